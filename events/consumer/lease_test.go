package consumer_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/consumer"
)

// A handler that runs to the end of its lease does not let its batch-mates
// expire unhandled: their leases are extended while it runs, so the next
// message is handled in the same batch, once, and nothing is dead-lettered
// for reads its handler never saw. (Before, the second message expired in
// every batch and was dead-lettered with the hanging one on its third
// read, its handler never called.)
func TestHangingHandlerDoesNotExpireBatchMates(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	hang := send(t, pool, newEvent("order.shipped"), nil)
	next := send(t, pool, newEvent("order.shipped"), nil)
	c := newConsumer(t, pool, consumer.Config{BatchSize: 2, VisibilityTimeout: time.Second, MaxReads: 2})
	var mu sync.Mutex
	calls := map[int64]int{}
	h := func(ctx context.Context, _ events.Event, d consumer.Delivery) error {
		mu.Lock()
		calls[d.MsgID]++
		mu.Unlock()
		if d.MsgID == hang {
			<-ctx.Done() // blocks until its lease ends
			return ctx.Err()
		}
		return nil
	}
	res, err := c.ProcessOnce(context.Background(), h)
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 2, Handled: 1, Failed: 1}, res)
	require.Equal(t, map[int64]int{hang: 1, next: 1}, calls, "the second message was handled in the first batch")
	require.Zero(t, c.Stats().Errors)
	require.Equal(t, 0, count(t, pool, dlqTable))
	require.Equal(t, []int64{hang}, msgIDs(t, pool, queueTable), "only the hanging message is left")

	// The hanging message alone is dead-lettered, on its second read.
	processUntil(t, c, h, 10*time.Second, func(r consumer.Result) bool { return r.DeadLettered > 0 })
	require.Equal(t, consumer.Result{Read: 3, Handled: 1, Failed: 1, DeadLettered: 1}, c.Stats().Result)
	require.Equal(t, map[int64]int{hang: 2, next: 1}, calls)
	require.Equal(t, 0, count(t, pool, queueTable))
	require.Equal(t, 1, count(t, pool, dlqTable))
}

// A handler that starts late in its batch's lease gets its full
// HandlerTimeout: its lease is extended before it starts.
func TestLateHandlerGetsFullTimeout(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	send(t, pool, newEvent("order.shipped"), nil)
	send(t, pool, newEvent("order.shipped"), nil)
	c := newConsumer(t, pool, consumer.Config{BatchSize: 2, VisibilityTimeout: 2 * time.Second})
	var left []time.Duration
	res, err := c.ProcessOnce(context.Background(), func(ctx context.Context, _ events.Event, _ consumer.Delivery) error {
		deadline, ok := ctx.Deadline()
		require.True(t, ok)
		left = append(left, time.Until(deadline))
		if len(left) == 1 {
			// Most of the lease, but not up to half of it, when the
			// waiting message's lease would be extended beside it.
			time.Sleep(800 * time.Millisecond)
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 2, Handled: 2}, res)
	require.Len(t, left, 2)
	require.Greater(t, left[1], 1500*time.Millisecond, "the second handler got (nearly) its full 2 s, not the 1.2 s left of the read's lease")
}

// An extension that fails is logged and counted, not fatal: the waiting
// messages keep their lease and expire.
func TestFailedLeaseExtension(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := setup(t)
	send(t, pool, newEvent("order.shipped"), nil)
	send(t, pool, newEvent("order.shipped"), nil)
	var logs syncBuffer
	c := newConsumer(t, pool, consumer.Config{BatchSize: 2, VisibilityTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	calls := 0
	res, err := c.ProcessOnce(ctx, func(hctx context.Context, _ events.Event, _ consumer.Delivery) error {
		calls++
		// This test's own database: break pgmq.set_vt for it.
		_, err := pool.Exec(ctx, `ALTER FUNCTION pgmq.set_vt(text, bigint, integer) RENAME TO set_vt_broken`)
		require.NoError(t, err)
		<-hctx.Done()
		return hctx.Err()
	})
	require.NoError(t, err)
	require.Equal(t, 1, calls)
	require.Equal(t, consumer.Result{Read: 2, Failed: 1, Expired: 1}, res)
	require.Equal(t, 1, c.Stats().Errors)
	require.Contains(t, logs.String(), "leases not extended")
	require.Equal(t, 2, count(t, pool, queueTable))
}

// syncBuffer is a bytes.Buffer safe for a logger writing from a timer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A batch of quick handlers extends no lease: no statement beyond the read
// and the acknowledgement. (Failing handlers leave the messages, so their
// vt can be compared with the read's.)
func TestQuickBatchExtendsNothing(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	for range 5 {
		send(t, pool, newEvent("order.shipped"), nil)
	}
	c := newConsumer(t, pool, consumer.Config{BatchSize: 5, VisibilityTimeout: 2 * time.Second})
	readVT := map[int64]time.Time{}
	res, err := c.ProcessOnce(context.Background(), func(_ context.Context, _ events.Event, d consumer.Delivery) error {
		readVT[d.MsgID] = d.VisibleAt
		return errors.New("not now")
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 5, Failed: 5}, res)
	rows, err := pool.Query(context.Background(), `SELECT msg_id, vt FROM `+queueTable)
	require.NoError(t, err)
	vt := map[int64]time.Time{}
	for rows.Next() {
		var id int64
		var at time.Time
		require.NoError(t, rows.Scan(&id, &at))
		vt[id] = at
	}
	require.NoError(t, rows.Err())
	require.Len(t, vt, 5)
	for id, at := range vt {
		require.True(t, at.Equal(readVT[id]), "message %d: vt %s, read's %s", id, at, readVT[id])
	}
}

// Stopping does not release a message whose local lease has run out:
// another consumer may hold it now, and making it visible would let a
// third take it too. It is counted Expired and stays hidden. The local
// clock jumps an hour ahead while the first handler runs, so every lease
// of the batch looks run out; then the consumer is stopped.
func TestStopDoesNotReleaseExpiredLeases(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	for range 3 {
		send(t, pool, newEvent("order.shipped"), nil)
	}
	c := newConsumer(t, pool, consumer.Config{BatchSize: 3})
	var skew atomic.Int64
	consumer.SetClock(c, func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	res, err := c.ProcessOnce(ctx, func(hctx context.Context, _ events.Event, _ consumer.Delivery) error {
		calls++
		skew.Store(int64(time.Hour))
		cancel()
		<-hctx.Done()
		return hctx.Err()
	})
	require.NoError(t, err)
	require.Equal(t, 1, calls)
	require.Equal(t, consumer.Result{Read: 3, Expired: 3}, res)
	var visible int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM `+queueTable+` WHERE vt <= clock_timestamp()`).Scan(&visible))
	require.Zero(t, visible, "nothing released")
	require.Equal(t, 3, count(t, pool, queueTable))
}

// An acknowledgement flush that falls due before a message can take long
// (up to its own timeout): the message's lease is checked after it, and a
// message whose lease ran out meanwhile is not handled but counted
// Expired. Here the first message's row is locked while its handler runs,
// so acknowledging it waits until 4.5 s after the read, past the second
// message's lease (extended once, at 1 s, to 3 s after the read).
func TestSlowFlushExpiresNextMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := setup(t)
	first := send(t, pool, newEvent("order.shipped"), nil)
	send(t, pool, newEvent("order.shipped"), nil)
	c := newConsumer(t, pool, consumer.Config{BatchSize: 2, VisibilityTimeout: 2 * time.Second})
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	unlocked := make(chan struct{})
	var calls []int64
	res, err := c.ProcessOnce(ctx, func(_ context.Context, _ events.Event, d consumer.Delivery) error {
		calls = append(calls, d.MsgID)
		if d.MsgID == first {
			_, err := tx.Exec(ctx, `SELECT 1 FROM `+queueTable+` WHERE msg_id = $1 FOR UPDATE`, first)
			require.NoError(t, err)
			go func() {
				defer close(unlocked)
				time.Sleep(4500 * time.Millisecond)
				_ = tx.Rollback(ctx)
			}()
			// Past half of the lease: the acknowledgement is due before
			// the second message.
			time.Sleep(1100 * time.Millisecond)
		}
		return nil
	})
	<-unlocked
	require.NoError(t, err)
	require.Equal(t, []int64{first}, calls, "the second message's handler did not run")
	require.Equal(t, consumer.Result{Read: 2, Handled: 1, Expired: 1}, res)
	require.Equal(t, 1, count(t, pool, queueTable))
}

// A waiting message that is gone when its lease is extended (acknowledged
// by someone else, deleted by hand) has lost its lease: it is counted
// Expired when its turn comes, without its handler, and the others of the
// batch are still extended and handled.
func TestGoneWaitingMessageLosesLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := setup(t)
	hang := send(t, pool, newEvent("order.shipped"), nil)
	gone := send(t, pool, newEvent("order.shipped"), nil)
	last := send(t, pool, newEvent("order.shipped"), nil)
	var logs syncBuffer
	c := newConsumer(t, pool, consumer.Config{BatchSize: 3, VisibilityTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var calls []int64
	res, err := c.ProcessOnce(ctx, func(hctx context.Context, _ events.Event, d consumer.Delivery) error {
		calls = append(calls, d.MsgID)
		if d.MsgID == hang {
			_, err := pool.Exec(ctx, `DELETE FROM `+queueTable+` WHERE msg_id = $1`, gone)
			require.NoError(t, err)
			<-hctx.Done()
			return hctx.Err()
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []int64{hang, last}, calls)
	require.Equal(t, consumer.Result{Read: 3, Handled: 1, Failed: 1, Expired: 1}, res)
	require.Zero(t, c.Stats().Errors)
	require.Contains(t, logs.String(), "lease lost")
	require.Equal(t, 1, count(t, pool, queueTable), "only the hanging message is left")
}

// Stopping while an extension is in flight is no database error: the
// extension gives up and the waiting message is released, as on any stop.
// Here the waiting message's row is locked, so the extension (due 1 s after
// the read) waits until the consumer is stopped.
func TestStopDuringExtensionIsNoError(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	first := send(t, pool, newEvent("order.shipped"), nil)
	second := send(t, pool, newEvent("order.shipped"), nil)
	c := newConsumer(t, pool, consumer.Config{BatchSize: 2, VisibilityTimeout: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tx, err := pool.Begin(context.Background())
	require.NoError(t, err)
	rolledBack := make(chan struct{})
	res, err := c.ProcessOnce(ctx, func(_ context.Context, _ events.Event, d consumer.Delivery) error {
		if d.MsgID != first {
			return errors.New("the second message must not be handled")
		}
		_, err := tx.Exec(context.Background(), `SELECT 1 FROM `+queueTable+` WHERE msg_id = $1 FOR UPDATE`, second)
		if err != nil {
			return err
		}
		time.Sleep(1300 * time.Millisecond) // the extension is waiting for the row now
		cancel()
		go func() {
			defer close(rolledBack)
			time.Sleep(200 * time.Millisecond)
			_ = tx.Rollback(context.Background())
		}()
		return nil
	})
	select {
	case <-rolledBack:
	case <-time.After(10 * time.Second):
		_ = tx.Rollback(context.Background())
		t.Fatal("the first handler never ran")
	}
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 2, Handled: 1, Released: 1}, res)
	require.Zero(t, c.Stats().Errors, "stopping is not an error")
}
