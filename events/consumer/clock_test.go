package consumer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/consumer"
)

// A local clock ahead of the database's must not make the consumer think
// its leases ran out at once: every message is still handled, and
// acknowledged, exactly once.
func TestLocalClockAheadOfDatabase(t *testing.T) {
	t.Parallel()
	testSkewedClock(t, time.Hour)
}

// A local clock behind the database's must not make the consumer think it
// holds leases that already ran out: pending acknowledgements are still
// sent in time and a handler is still stopped at the end of its lease, so
// no message is handled twice.
func TestLocalClockBehindDatabase(t *testing.T) {
	t.Parallel()
	testSkewedClock(t, -time.Hour)
}

// testSkewedClock runs two consumers whose local clock is skew off the
// database's over a lease of 2 s. Consumer a reads both messages: the
// first is handled at once, the second's first delivery is slow (4 s,
// unless its ctx ends first). Consumer b starts polling once a holds the
// batch (or is done with it). Timed on the local clock from the read, the first message is
// acknowledged at half of its lease while the slow handler runs, and the
// slow handler is cancelled at the end of its lease (2 s, under its 10 s
// HandlerTimeout); its message reappears and b handles it. Each event then
// succeeds exactly once and ends in the archive.
func testSkewedClock(t *testing.T, skew time.Duration) {
	pool := setup(t)
	ids := []int64{send(t, pool, newEvent("order.shipped"), nil), send(t, pool, newEvent("order.shipped"), nil)}
	skewed := func() time.Time { return time.Now().Add(skew) }
	cfg := consumer.Config{BatchSize: 2, VisibilityTimeout: 2 * time.Second, HandlerTimeout: 10 * time.Second,
		PollInterval: 50 * time.Millisecond, Archive: true}
	a, b := newConsumer(t, pool, cfg), newConsumer(t, pool, cfg)
	consumer.SetClock(a, skewed)
	consumer.SetClock(b, skewed)

	var mu sync.Mutex
	calls := map[int64]int{}     // handler calls per message
	succeeded := map[int64]int{} // handler calls that returned nil
	record := func(d consumer.Delivery, err error) error {
		mu.Lock()
		defer mu.Unlock()
		calls[d.MsgID]++
		if err == nil {
			succeeded[d.MsgID]++
		}
		return err
	}
	aHolds := make(chan struct{})
	var once sync.Once
	handleA := func(ctx context.Context, _ events.Event, d consumer.Delivery) error {
		once.Do(func() { close(aHolds) })
		if d.MsgID == ids[1] && d.ReadCount == 1 {
			select {
			case <-ctx.Done():
				return record(d, ctx.Err())
			case <-time.After(4 * time.Second):
			}
		}
		return record(d, nil)
	}
	handleB := func(_ context.Context, _ events.Event, d consumer.Delivery) error { return record(d, nil) }

	var resA consumer.Result
	var errA error
	aDone := make(chan struct{})
	go func() {
		defer close(aDone)
		resA, errA = a.ProcessOnce(context.Background(), handleA)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	select {
	case <-aHolds:
	case <-aDone:
	}
	bDone := make(chan error, 1)
	go func() { bDone <- b.Run(ctx, handleB) }()
	<-aDone
	require.NoError(t, errA)
	// Wait for both events to be handled (by b, for a failed delivery)
	// and acknowledged; then long enough for a message acknowledged late
	// to have been handled again.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return succeeded[ids[0]] > 0 && succeeded[ids[1]] > 0 && count(t, pool, queueTable) == 0
	}, 10*time.Second, 50*time.Millisecond, "both events handled and acknowledged (a: %+v)", resA)
	time.Sleep(500 * time.Millisecond)
	cancel()
	require.NoError(t, <-bDone)

	require.Equal(t, map[int64]int{ids[0]: 1, ids[1]: 1}, succeeded, "each event handled once (calls %v)", calls)
	require.Equal(t, map[int64]int{ids[0]: 1, ids[1]: 2}, calls, "the slow handler was cancelled at its lease's end, once")
	require.Equal(t, consumer.Result{Read: 2, Handled: 1, Failed: 1}, resA)
	require.Equal(t, consumer.Result{Read: 1, Handled: 1}, b.Stats().Result)
	require.Equal(t, 0, count(t, pool, queueTable))
	require.Equal(t, 0, count(t, pool, dlqTable))
	require.Equal(t, ids, archivedIDs(t, pool), "each message archived once")
}

// archivedIDs lists the msg_ids in the queue's archive, in order.
func archivedIDs(t *testing.T, pool *pgxpool.Pool) []int64 { return msgIDs(t, pool, archive) }

// msgIDs lists the msg_ids in a pgmq table (queue or archive), in order.
func msgIDs(t *testing.T, pool *pgxpool.Pool, table string) []int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT msg_id FROM `+table+` ORDER BY msg_id`)
	require.NoError(t, err)
	var ids []int64
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}
