package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/consumer"
)

// A batch's handled messages are acknowledged together after the batch:
// while later messages are handled, earlier ones are still in the queue
// (hidden), and after ProcessOnce none is left.
func TestBatchAcknowledgedTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := setup(t)
	for range 5 {
		send(t, pool, newEvent("order.shipped"), nil)
	}
	c := newConsumer(t, pool, consumer.Config{BatchSize: 5})
	var inQueue []int
	res, err := c.ProcessOnce(ctx, func(context.Context, events.Event, consumer.Delivery) error {
		inQueue = append(inQueue, count(t, pool, queueTable))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 5, Handled: 5}, res)
	require.Equal(t, []int{5, 5, 5, 5, 5}, inQueue, "acknowledged after the batch, not one by one")
	require.Equal(t, 0, count(t, pool, queueTable))
}

// Pending acknowledgements are sent before half of the lease has passed,
// so a slow batch does not let handled messages reappear.
func TestSlowBatchAcknowledgesBeforeLeaseHalfway(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := setup(t)
	for range 3 {
		send(t, pool, newEvent("order.shipped"), nil)
	}
	// Lease 4 s; each handler takes 1.2 s. Before the third message 2.4 s
	// have passed (1.6 s of lease left, under half): the first two are
	// acknowledged by then (the first by the timer during the second
	// handler). HandlerTimeout 2 s: the second message still has enough
	// lease left for its handler, so its lease is not extended before it
	// starts and its acknowledgement falls due on the read's lease.
	c := newConsumer(t, pool, consumer.Config{BatchSize: 3, VisibilityTimeout: 4 * time.Second,
		HandlerTimeout: 2 * time.Second})
	var inQueue []int
	res, err := c.ProcessOnce(ctx, func(context.Context, events.Event, consumer.Delivery) error {
		inQueue = append(inQueue, count(t, pool, queueTable))
		time.Sleep(1200 * time.Millisecond)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 3, Handled: 3}, res)
	require.Equal(t, []int{3, 3, 1}, inQueue)
	require.Equal(t, 0, count(t, pool, queueTable))
}

// Failed and handled messages in one batch: only the handled ones are
// acknowledged.
func TestBatchAcknowledgesOnlyHandled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := setup(t)
	var ids []int64
	for range 4 {
		ids = append(ids, send(t, pool, newEvent("order.shipped"), nil))
	}
	c := newConsumer(t, pool, consumer.Config{BatchSize: 4})
	res, err := c.ProcessOnce(ctx, func(_ context.Context, _ events.Event, d consumer.Delivery) error {
		switch d.MsgID {
		case ids[1]:
			return consumer.ErrDuplicate
		case ids[2]:
			return context.DeadlineExceeded // an ordinary failure
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 4, Handled: 2, Duplicates: 1, Failed: 1}, res)
	require.Equal(t, []int64{ids[2]}, msgIDs(t, pool, queueTable))
}

// The handler sees the message's pgmq headers, string and other values.
func TestDeliveryHeaders(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	send(t, pool, newEvent("order.shipped"), map[string]any{"event_name": "order.shipped", "n": 2,
		"nested": map[string]any{"a": []any{"x"}}, "esc": "a\"b\u00e9"})
	send(t, pool, newEvent("order.shipped"), nil)
	c := newConsumer(t, pool, consumer.Config{BatchSize: 2})
	var got []map[string]any
	_, err := c.ProcessOnce(context.Background(), func(_ context.Context, _ events.Event, d consumer.Delivery) error {
		got = append(got, d.Headers)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []map[string]any{{"event_name": "order.shipped", "n": float64(2),
		"nested": map[string]any{"a": []any{"x"}}, "esc": "a\"b\u00e9"}, nil}, got)
}

// A slow handler does not hold the batch's pending acknowledgements past
// half of their lease: they are sent while it runs.
func TestSlowHandlerDoesNotHoldAcknowledgements(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	send(t, pool, newEvent("order.shipped"), nil)
	send(t, pool, newEvent("order.shipped"), nil)
	c := newConsumer(t, pool, consumer.Config{BatchSize: 2, VisibilityTimeout: 2 * time.Second})
	calls := 0
	var during int
	res, err := c.ProcessOnce(context.Background(), func(context.Context, events.Event, consumer.Delivery) error {
		calls++
		if calls == 2 {
			// The first message's acknowledgement is due 1 s after the
			// read (half of the 2 s lease).
			time.Sleep(1400 * time.Millisecond)
			during = count(t, pool, queueTable)
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 2, Handled: 2}, res)
	require.Equal(t, 1, during, "the first message was acknowledged while the second's handler ran")
	require.Equal(t, 0, count(t, pool, queueTable))
}
