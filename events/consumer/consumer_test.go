package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/consumer"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/test/testdb"
)

// A real durable event, published by completing steps, is handled once and
// deleted.
func TestSuccessDeletes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := setup(t)
	client, err := events.NewClient(ctx, pool, &events.Config{Publishers: publishers.All()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close(context.Background())) })
	taskID, err := client.CreateTask(ctx, events.CreateTaskParams{Namespace: namespace, Name: "domain_event_publishing",
		Context: json.RawMessage(`{"order_id":"8c8a1f8e-6f57-4b0e-9d1c-2f8b8a0e4b11","customer_id":"c-1","amount":42}`)})
	require.NoError(t, err)
	steps, err := events.TaskSteps(ctx, pool, taskID)
	require.NoError(t, err)
	for i, result := range []string{`{"order_id":"o-1","validation_timestamp":"2026-01-01T00:00:00Z"}`,
		`{"transaction_id":"txn-1","amount":42}`} {
		_, err = events.StartStep(ctx, pool, steps[i].StepUUID)
		require.NoError(t, err)
		_, err = client.CompleteStep(ctx, steps[i].StepUUID, json.RawMessage(result))
		require.NoError(t, err)
	}
	require.Equal(t, 1, count(t, pool, queueTable), "payment.processed is broadcast")

	c := newConsumer(t, pool, consumer.Config{})
	var got []events.Event
	var deliveries []consumer.Delivery
	res, err := c.ProcessOnce(ctx, func(_ context.Context, ev events.Event, d consumer.Delivery) error {
		got = append(got, ev)
		deliveries = append(deliveries, d)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 1, Handled: 1}, res)
	require.Len(t, got, 1)
	require.Equal(t, "payment.processed", got[0].EventName)
	require.Equal(t, taskID, got[0].Metadata.TaskUUID)
	require.Equal(t, queue, deliveries[0].Queue)
	require.Equal(t, 1, deliveries[0].ReadCount)
	require.Equal(t, 0, count(t, pool, queueTable))
	require.Equal(t, 0, count(t, pool, archive))

	res, err = c.ProcessOnce(ctx, func(context.Context, events.Event, consumer.Delivery) error {
		t.Fatal("nothing left to handle")
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{}, res)
	require.Equal(t, consumer.Stats{Result: consumer.Result{Read: 1, Handled: 1}, Batches: 1}, c.Stats())
}

func TestSuccessArchives(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ev := newEvent("order.shipped")
	id := send(t, pool, ev, map[string]any{"k": "v"})
	c := newConsumer(t, pool, consumer.Config{Archive: true})
	res, err := c.ProcessOnce(context.Background(), func(context.Context, events.Event, consumer.Delivery) error { return nil })
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 1, Handled: 1}, res)
	require.Equal(t, 0, count(t, pool, queueTable))
	var archived uuid.UUID
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT (message->>'event_id')::uuid FROM `+archive+` WHERE msg_id = $1`, id).Scan(&archived))
	require.Equal(t, ev.EventID, archived)
}

func TestFailureRedeliversAfterVisibilityTimeout(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ev := newEvent("order.shipped")
	send(t, pool, ev, nil)
	c := newConsumer(t, pool, consumer.Config{VisibilityTimeout: time.Second})
	var reads []consumer.Delivery
	var firstAt time.Time
	h := func(_ context.Context, got events.Event, d consumer.Delivery) error {
		require.Equal(t, ev.EventID, got.EventID)
		reads = append(reads, d)
		if len(reads) == 1 {
			firstAt = time.Now()
			return errors.New("downstream unavailable")
		}
		return nil
	}
	res, err := c.ProcessOnce(context.Background(), h)
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 1, Failed: 1}, res)
	require.Equal(t, 1, count(t, pool, queueTable), "a failed message stays in the queue")

	res, err = c.ProcessOnce(context.Background(), h)
	require.NoError(t, err)
	require.Equal(t, consumer.Result{}, res, "hidden until the visibility timeout ends")

	processUntil(t, c, h, 10*time.Second, func(r consumer.Result) bool { return r.Handled == 1 })
	require.Len(t, reads, 2)
	require.Equal(t, 2, reads[1].ReadCount)
	require.GreaterOrEqual(t, time.Since(firstAt), 900*time.Millisecond, "redelivered only after the timeout")
	require.Equal(t, 0, count(t, pool, queueTable))
}

func TestFailuresDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := setup(t)
	ev := newEvent("order.shipped")
	id := send(t, pool, ev, map[string]any{"trace_id": "t-1"})
	c := newConsumer(t, pool, consumer.Config{VisibilityTimeout: time.Second, MaxReads: 3})
	calls := 0
	h := func(_ context.Context, _ events.Event, d consumer.Delivery) error {
		calls++
		return fmt.Errorf("boom on read %d", d.ReadCount)
	}
	total := processUntil(t, c, h, 15*time.Second, func(r consumer.Result) bool { return r.DeadLettered == 1 })
	require.Equal(t, consumer.Result{Read: 3, Failed: 2, DeadLettered: 1}, total)
	require.Equal(t, 3, calls)
	require.Equal(t, 0, count(t, pool, queueTable), "moved, not copied")

	var msg, hdr []byte
	require.NoError(t, pool.QueryRow(ctx, `SELECT message, headers FROM `+dlqTable).Scan(&msg, &hdr))
	var dead events.Event
	require.NoError(t, json.Unmarshal(msg, &dead))
	require.Equal(t, ev.EventID, dead.EventID)
	var headers map[string]any
	require.NoError(t, json.Unmarshal(hdr, &headers))
	require.Equal(t, "boom on read 3", headers[consumer.HeaderDLQReason])
	require.Equal(t, queue, headers[consumer.HeaderDLQSourceQueue])
	require.EqualValues(t, 3, headers[consumer.HeaderDLQReadCount])
	require.EqualValues(t, id, headers[consumer.HeaderDLQMsgID])
	require.NotEmpty(t, headers[consumer.HeaderDLQDeadLetteredAt])
	require.Equal(t, "t-1", headers["trace_id"], "the original headers are kept")
	require.Equal(t, 1, c.Stats().DeadLettered)
}

func TestPanicIsAFailure(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	send(t, pool, newEvent("order.shipped"), nil)
	c := newConsumer(t, pool, consumer.Config{MaxReads: 1})
	res, err := c.ProcessOnce(context.Background(), func(context.Context, events.Event, consumer.Delivery) error {
		panic("nil map")
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 1, DeadLettered: 1}, res)
	var reason string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT headers->>'x-dlq-reason' FROM `+dlqTable).Scan(&reason))
	require.Equal(t, "handler panicked: nil map", reason)
}

func TestPermanentErrorDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	send(t, pool, newEvent("order.shipped"), nil)
	c := newConsumer(t, pool, consumer.Config{})
	res, err := c.ProcessOnce(context.Background(), func(context.Context, events.Event, consumer.Delivery) error {
		return consumer.Permanent(errors.New("order o-1 does not exist"))
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 1, DeadLettered: 1}, res)
	require.Equal(t, 0, count(t, pool, queueTable))
	require.Equal(t, 1, count(t, pool, dlqTable))
}

func TestMalformedMessageDeadLettersWithoutHandler(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	send(t, pool, map[string]any{"hello": "world"}, nil)
	c := newConsumer(t, pool, consumer.Config{})
	res, err := c.ProcessOnce(context.Background(), func(context.Context, events.Event, consumer.Delivery) error {
		t.Fatal("the handler gets only events")
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 1, DeadLettered: 1}, res)
	var reason string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT headers->>'x-dlq-reason' FROM `+dlqTable).Scan(&reason))
	require.Contains(t, reason, "malformed event")
}

// A message read MaxReads times by consumers that never answered (crashed,
// timed out) is dead-lettered on the next read without calling the handler.
func TestOverReadMessageDeadLetters(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	id := send(t, pool, newEvent("order.shipped"), nil)
	_, err := pool.Exec(context.Background(), `UPDATE `+queueTable+` SET read_ct = 2 WHERE msg_id = $1`, id)
	require.NoError(t, err)
	c := newConsumer(t, pool, consumer.Config{MaxReads: 2})
	res, err := c.ProcessOnce(context.Background(), func(context.Context, events.Event, consumer.Delivery) error {
		t.Fatal("over-read messages skip the handler")
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, consumer.Result{Read: 1, DeadLettered: 1}, res)
	var reason, reads string
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT headers->>'x-dlq-reason', headers->>'x-dlq-read-count' FROM `+dlqTable).Scan(&reason, &reads))
	require.Contains(t, reason, "read 3 times (max reads 2) without an answer")
	require.Equal(t, "3", reads)
}

// Concurrent consumers never get the same visible message (SKIP LOCKED):
// every event is handled exactly once while none fails.
func TestConcurrentConsumersDoNotDoubleHandle(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	const n, workers = 200, 4
	_, err := pool.Exec(context.Background(), `SELECT pgmq.send_batch($1::text, array_agg(jsonb_build_object(
		'event_id', gen_random_uuid(), 'event_name', 'order.shipped', 'event_version', '1.0')))
		FROM generate_series(1, $2::integer)`, queue, n)
	require.NoError(t, err)

	var mu sync.Mutex
	seen := map[uuid.UUID]int{}
	var handled atomic.Int64
	h := func(_ context.Context, ev events.Event, _ consumer.Delivery) error {
		mu.Lock()
		seen[ev.EventID]++
		mu.Unlock()
		handled.Add(1)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	consumers := make([]*consumer.Consumer, workers)
	for i := range consumers {
		consumers[i] = newConsumer(t, pool, consumer.Config{BatchSize: 7, PollInterval: 10 * time.Millisecond})
		wg.Go(func() { require.NoError(t, consumers[i].Run(ctx, h)) })
	}
	require.Eventually(t, func() bool { return handled.Load() >= n }, 20*time.Second, 10*time.Millisecond)
	cancel()
	wg.Wait()

	require.Len(t, seen, n)
	for id, k := range seen {
		require.Equal(t, 1, k, "event %s handled %d times", id, k)
	}
	total := 0
	for _, c := range consumers {
		total += c.Stats().Handled
	}
	require.Equal(t, n, total)
	require.Equal(t, 0, count(t, pool, queueTable))
}

// Cancelling Run gives the batch's unhandled messages back at once instead
// of leaving them hidden for the visibility timeout.
func TestRunReleasesUnhandledOnCancel(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	for range 5 {
		send(t, pool, newEvent("order.shipped"), nil)
	}
	c := newConsumer(t, pool, consumer.Config{BatchSize: 5})
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := c.Run(ctx, func(hctx context.Context, _ events.Event, _ consumer.Delivery) error {
		calls++
		cancel() // shutdown while the first handler runs
		<-hctx.Done()
		return hctx.Err()
	})
	require.NoError(t, err)
	require.Equal(t, 1, calls)
	require.Equal(t, consumer.Result{Read: 5, Released: 5}, c.Stats().Result)
	var visible int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM `+queueTable+` WHERE vt <= clock_timestamp()`).Scan(&visible))
	require.Equal(t, 5, visible)
}

func TestUnknownQueue(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	c := newConsumer(t, pool, consumer.Config{Namespace: "no_such_namespace"})
	h := func(context.Context, events.Event, consumer.Delivery) error { return nil }
	_, err := c.ProcessOnce(context.Background(), h)
	require.ErrorIs(t, err, events.ErrQueueMissing)
	require.ErrorContains(t, err, `queue "no_such_namespace_domain_events" does not exist`)
	require.ErrorIs(t, c.Run(context.Background(), h), events.ErrQueueMissing)
}

// Where pgmq is not installed, the consumer says to migrate and Run stops
// instead of retrying for ever.
func TestConsumerOnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), testdb.NewEmptyURL(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	c := newConsumer(t, pool, consumer.Config{})
	h := func(context.Context, events.Event, consumer.Delivery) error { return nil }
	_, err = c.ProcessOnce(context.Background(), h)
	require.ErrorIs(t, err, events.ErrNotMigrated)
	require.NotErrorIs(t, err, events.ErrQueueMissing)
	require.ErrorIs(t, c.Run(context.Background(), h), events.ErrNotMigrated)
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	for _, cfg := range []consumer.Config{
		{Namespace: "Domain-Events"},
		{},
		{Namespace: namespace, VisibilityTimeout: -time.Second},
		{Namespace: namespace, MaxReads: -1},
	} {
		_, err := consumer.New(pool, cfg)
		require.ErrorIs(t, err, events.ErrInvalidInput, "%+v", cfg)
	}
	c := newConsumer(t, pool, consumer.Config{VisibilityTimeout: 1500 * time.Millisecond})
	got := c.Config()
	require.Equal(t, 2*time.Second, got.VisibilityTimeout, "rounded up to whole seconds")
	require.Equal(t, 2*time.Second, got.HandlerTimeout)
	require.Equal(t, consumer.DefaultMaxReads, got.MaxReads)
	require.Equal(t, consumer.DefaultBatchSize, got.BatchSize)
	require.Equal(t, queue+"_dlq", c.DeadLetterQueue())
}

// dead_letter moves a message only while nobody has read it since the
// caller did.
func TestDeadLetterChecksReadCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := setup(t)
	id := send(t, pool, newEvent("order.shipped"), nil)
	var dlqID int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT stepevents.dead_letter($1, $2, 1, 'stale')`, queue, id).Scan(&dlqID))
	require.Zero(t, dlqID, "read_ct is 0, not 1: another consumer's read")
	require.NoError(t, pool.QueryRow(ctx, `SELECT stepevents.dead_letter($1, $2, 0, 'why')`, queue, id).Scan(&dlqID))
	require.NotZero(t, dlqID)
	require.Equal(t, 0, count(t, pool, queueTable))
	require.Equal(t, 1, count(t, pool, dlqTable))
}

// A message whose lease ran out while an earlier one of its batch was
// handled is left alone, counted Expired (not Released: nothing made it
// visible early); it stays in the queue for a later read. Here the first
// handler ignores its ctx and runs on past the one extension its
// batch-mate's lease gets (at half of the lease, to 1.5 s after the read).
func TestExpiredLeaseIsSkipped(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	first, second := newEvent("order.shipped"), newEvent("order.shipped")
	send(t, pool, first, nil)
	send(t, pool, second, nil)
	c := newConsumer(t, pool, consumer.Config{BatchSize: 2, VisibilityTimeout: time.Second})
	var seen []uuid.UUID
	res, err := c.ProcessOnce(context.Background(), func(_ context.Context, ev events.Event, _ consumer.Delivery) error {
		seen = append(seen, ev.EventID)
		time.Sleep(2 * time.Second) // past both leases, ignoring ctx
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{first.EventID}, seen, "the second message's handler never ran")
	require.Equal(t, 2, res.Read)
	require.Equal(t, 1, res.Expired, "%+v", res)
	require.Zero(t, res.Released, "%+v", res)
	var left int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM `+queueTable+` WHERE message->>'event_id' = $1`, second.EventID.String()).Scan(&left))
	require.Equal(t, 1, left, "the second message stays in the queue")
}
