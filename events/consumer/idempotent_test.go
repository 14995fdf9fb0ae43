package consumer_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/consumer"
)

// sideEffects creates the table an idempotent test handler writes to.
func sideEffects(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `CREATE TABLE side_effects (event_id uuid NOT NULL)`)
	require.NoError(t, err)
}

func recordSideEffect(ctx context.Context, tx pgx.Tx, ev events.Event, _ consumer.Delivery) error {
	_, err := tx.Exec(ctx, `INSERT INTO side_effects (event_id) VALUES ($1)`, ev.EventID)
	return err
}

// The same event delivered twice (two messages) is handled once; both
// messages are acknowledged.
func TestIdempotentHandlesDuplicatesOnce(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	sideEffects(t, pool)
	ev := newEvent("order.shipped")
	send(t, pool, ev, nil)
	send(t, pool, ev, nil)

	c := newConsumer(t, pool, consumer.Config{})
	res, err := c.ProcessOnce(context.Background(), consumer.Idempotent(pool, "shipping", recordSideEffect))
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 2, Handled: 1, Duplicates: 1}, res)
	require.Equal(t, 1, count(t, pool, "side_effects"))
	require.Equal(t, 0, count(t, pool, queueTable))
	require.Equal(t, 1, c.Stats().Duplicates)

	// Another consumer name handles it on its own.
	send(t, pool, ev, nil)
	res, err = c.ProcessOnce(context.Background(), consumer.Idempotent(pool, "billing", recordSideEffect))
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 1, Handled: 1}, res)
	require.Equal(t, 2, count(t, pool, "side_effects"))
}

// A handler that fails rolls back its record with its writes, so the
// redelivery is handled.
func TestIdempotentFailureIsNotRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := setup(t)
	sideEffects(t, pool)
	ev := newEvent("order.shipped")
	fail := true
	h := consumer.Idempotent(pool, "shipping", func(ctx context.Context, tx pgx.Tx, ev events.Event, d consumer.Delivery) error {
		if err := recordSideEffect(ctx, tx, ev, d); err != nil {
			return err
		}
		if fail {
			return errors.New("mail server down")
		}
		return nil
	})
	require.EqualError(t, h(ctx, ev, consumer.Delivery{}), "mail server down")
	require.Equal(t, 0, count(t, pool, "side_effects"))
	require.Equal(t, 0, count(t, pool, "stepevents.consumed_events"))

	fail = false
	require.NoError(t, h(ctx, ev, consumer.Delivery{}))
	require.ErrorIs(t, h(ctx, ev, consumer.Delivery{}), consumer.ErrDuplicate)
	require.Equal(t, 1, count(t, pool, "side_effects"))
}

// Two deliveries of one event handled at the same moment: the second waits
// on the first's record and then sees a duplicate.
func TestIdempotentConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	sideEffects(t, pool)
	ev := newEvent("order.shipped")
	h := consumer.Idempotent(pool, "shipping", recordSideEffect)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = h(context.Background(), ev, consumer.Delivery{}) })
	}
	wg.Wait()
	ok, dup := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, consumer.ErrDuplicate):
			dup++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	require.Equal(t, 1, ok)
	require.Equal(t, n-1, dup)
	require.Equal(t, 1, count(t, pool, "side_effects"))
}

func TestHandledOnceRefusesEmptyInput(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	_, err := consumer.HandledOnce(context.Background(), pool, "", newEvent("x.y").EventID)
	require.ErrorIs(t, err, events.ErrInvalidInput)
	require.Panics(t, func() { consumer.Idempotent(pool, "", recordSideEffect) })
}
