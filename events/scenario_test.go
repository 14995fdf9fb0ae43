package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/eventstest"
)

// The original's failure scenario 5 ("complete failure"), asserted on events
// with the public capture helpers: validate completes, payment is declined;
// exactly order.validated (fast) and payment.failed.permanent (durable) are
// published, nothing else, nothing from later steps.
func TestCompleteFailureScenarioWithCaptureHelpers(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	bus := events.NewBus(events.BusConfig{})
	fast, err := eventstest.NewFastEventCapture(bus)
	require.NoError(t, err)
	listener, err := events.NewListener(b.pool, bus, events.ListenerConfig{})
	require.NoError(t, err)
	require.NoError(t, listener.Start(b.ctx))
	t.Cleanup(func() {
		require.NoError(t, listener.Stop(context.Background()))
		fast.Close()
		_, _ = bus.Close(context.Background())
	})
	durable := eventstest.NewDurableEventCapture(b.pool)

	_, steps := b.newTask(t)
	failPayment(t, b, steps, events.Failure{Message: "card declined", Code: "CARD_DECLINED", Permanent: true})
	b.sentinel(t)

	require.True(t, fast.WaitForEvents(2, 5*time.Second))
	fast.RequireCaptured(t, "order.validated")
	var ours int
	for _, ev := range fast.Events() {
		if ev.Metadata.StepUUID == steps[stepValidate] {
			ours++
			require.Equal(t, "order.validated", ev.EventName)
		}
	}
	require.Equal(t, 1, ours, "one fast event from this task; the other is the sentinel's")
	fast.RequireNotCaptured(t, "payment.failed.retryable")
	fast.RequireNotCaptured(t, "payment.processed")

	got := durable.RequirePublished(t, "domain_events", "payment.failed.permanent")
	require.False(t, got.Event.Payload.ExecutionResult.Success)
	durable.RequireNotPublished(t, "domain_events", "payment.processed")
	durable.RequireNotPublished(t, "domain_events", "inventory.updated")
	n, err := durable.Count(b.ctx, "domain_events")
	require.NoError(t, err)
	require.Equal(t, 1, n)

	res, err := durable.CleanupTracked(b.ctx, "domain_events", durable.Tracked("domain_events"))
	require.NoError(t, err)
	require.Equal(t, eventstest.CleanupResult{Deleted: 1}, res)
}
