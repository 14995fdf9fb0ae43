package subscribers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/examples/subscribers"
)

func event(name string, success bool) events.Event {
	return events.Event{
		EventID: uuid.New(), EventName: name, EventVersion: events.EventVersion,
		Payload: events.EventPayload{ExecutionResult: events.ExecutionResult{Success: success}},
		Metadata: events.EventMetadata{TaskUUID: uuid.New(), StepName: "domain_events_process_payment",
			Namespace: "domain_events"},
	}
}

// runBus publishes evs on a bus with handler subscribed to "*" and closes
// it, so every event has been handled when it returns.
func runBus(t *testing.T, handler events.HandlerFunc, evs ...events.Event) *events.Bus {
	t.Helper()
	bus := events.NewBus(events.BusConfig{})
	_, err := bus.Subscribe("*", handler)
	require.NoError(t, err)
	for _, ev := range evs {
		bus.Publish(ev)
	}
	_, err = bus.Close(context.Background())
	require.NoError(t, err)
	return bus
}

func TestLoggingSubscriber(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	ev := event("payment.processed", true)
	runBus(t, subscribers.NewLoggingSubscriber(logger, "payments"), ev)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 1)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	require.Equal(t, "INFO", rec["level"])
	require.Equal(t, "payments: event received", rec["msg"])
	require.Equal(t, "payment.processed", rec["event_name"])
	require.Equal(t, ev.EventID.String(), rec["event_id"])
	require.Equal(t, ev.Metadata.TaskUUID.String(), rec["task_uuid"])
	require.Equal(t, "domain_events_process_payment", rec["step_name"])
	require.Equal(t, "domain_events", rec["namespace"])
	require.NotContains(t, rec, "payload", "payloads stay out of the logs")
}

func TestEventMetricsCollector(t *testing.T) {
	t.Parallel()
	m := subscribers.NewEventMetricsCollector()
	runBus(t, m.Handler(),
		event("payment.processed", true), event("order.validated", true),
		event("payment.failed.retryable", false), event("payment.processed", true))
	snap := m.Snapshot()
	require.Equal(t, subscribers.EventMetrics{EventsReceived: 4, SuccessEvents: 3, FailureEvents: 1,
		ByEventName: map[string]uint64{"payment.processed": 2, "order.validated": 1, "payment.failed.retryable": 1}}, snap)
	snap.ByEventName["payment.processed"] = 99
	require.Equal(t, uint64(2), m.Snapshot().ByEventName["payment.processed"], "a snapshot is a copy")
	b, err := json.Marshal(snap)
	require.NoError(t, err)
	require.Contains(t, string(b), `"events_received":4,"success_events":3,"failure_events":1,"by_event_name":`)
}
