package eventstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/eventstest"
)

func fastCapture(t *testing.T) (*events.Bus, *eventstest.FastEventCapture) {
	t.Helper()
	bus := events.NewBus(events.BusConfig{})
	t.Cleanup(func() {
		_, err := bus.Close(context.Background())
		require.NoError(t, err)
	})
	c, err := eventstest.NewFastEventCapture(bus)
	require.NoError(t, err)
	return bus, c
}

func ev(name string) events.Event { return events.Event{EventID: uuid.New(), EventName: name} }

func TestFastEventCapture(t *testing.T) {
	t.Parallel()
	bus, c := fastCapture(t)
	first := ev("order.validated")
	bus.Publish(first)
	bus.Publish(ev("payment.processed"))
	bus.PublishGap(events.GapSignal{Reconnects: 1})
	require.True(t, c.WaitForEvents(2, 10*time.Second))
	require.True(t, c.WaitForGaps(1, 10*time.Second))
	require.Equal(t, 2, c.Count())
	require.Equal(t, []string{"order.validated", "payment.processed"},
		[]string{c.Events()[0].EventName, c.Events()[1].EventName})
	require.Equal(t, first.EventID, c.RequireCaptured(t, "order.validated").EventID)
	c.RequireNotCaptured(t, "inventory.updated")
	got, ok := c.WaitForEvent("payment.processed", 10*time.Second)
	require.True(t, ok)
	require.Equal(t, "payment.processed", got.EventName)
	require.Len(t, c.Gaps(), 1)

	require.False(t, c.WaitForEvents(3, 10*time.Millisecond), "times out when nothing more arrives")
	_, ok = c.WaitForEvent("never.sent", 10*time.Millisecond)
	require.False(t, ok)

	c.Close()
	c.Close()
	bus.Publish(ev("order.late"))
	require.Equal(t, 2, c.Count(), "nothing is captured after Close")
}

func TestFastEventCaptureFailures(t *testing.T) {
	t.Parallel()
	bus, c := fastCapture(t)
	m := &mockT{}
	c.RequireCaptured(m, "order.validated")
	require.Equal(t, `stepevents assertion failure: expected fast event "order.validated", but it was not captured; captured nothing`, m.String())

	bus.Publish(ev("payment.processed"))
	bus.Publish(ev("inventory.updated"))
	require.True(t, c.WaitForEvents(2, 10*time.Second))
	m = &mockT{}
	c.RequireCaptured(m, "order.validated")
	require.Equal(t, `stepevents assertion failure: expected fast event "order.validated", but it was not captured; captured 2: [payment.processed, inventory.updated]`, m.String())

	m = &mockT{}
	c.RequireNotCaptured(m, "payment.processed")
	require.Equal(t, `stepevents assertion failure: expected no fast event "payment.processed", but captured 1`, m.String())
	require.True(t, m.failed())
}
