package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// waitTimeout bounds waits for things that happen promptly; tests never
// assert on elapsed time.
const waitTimeout = 10 * time.Second

func newEvent(name string) events.Event {
	return events.Event{EventID: uuid.New(), EventName: name, EventVersion: events.EventVersion}
}

func newBus(t *testing.T, cfg events.BusConfig) *events.Bus {
	t.Helper()
	bus := events.NewBus(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_, err := bus.Close(ctx)
		require.NoError(t, err)
	})
	return bus
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func closeBus(t *testing.T, bus *events.Bus) events.CloseReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	rep, err := bus.Close(ctx)
	require.NoError(t, err)
	return rep
}

// TestBusSlowSubscriberDoesNotDelayOthers proves by ordering: the slow
// handler cannot return until the fast subscriber has every event.
func TestBusSlowSubscriberDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	bus := newBus(t, events.BusConfig{})
	const n = 100
	release := make(chan struct{})
	var slowGot atomic.Int64
	_, err := bus.Subscribe("order.*", func(ctx context.Context, ev events.Event) error {
		<-release
		slowGot.Add(1)
		return nil
	}, events.WithName("slow"))
	require.NoError(t, err)
	fastDone := make(chan struct{})
	var fastNames []string
	_, err = bus.Subscribe("order.*", func(ctx context.Context, ev events.Event) error {
		fastNames = append(fastNames, ev.EventName)
		if len(fastNames) == n {
			close(fastDone)
		}
		return nil
	}, events.WithName("fast"))
	require.NoError(t, err)

	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("order.e%d", i)
		bus.Publish(newEvent(want[i])) // returns although "slow" is stuck
	}
	wait(t, fastDone, "the fast subscriber")
	require.Equal(t, want, fastNames, "one subscriber sees events in publish order")
	require.Zero(t, slowGot.Load(), "the slow subscriber has not finished one event yet")
	close(release)
	rep := closeBus(t, bus)
	require.Equal(t, int64(n), slowGot.Load())
	require.Zero(t, rep.Undelivered)
	st := bus.Stats()
	require.Equal(t, uint64(2*n), st.Delivered)
	require.Zero(t, st.Dropped)
}

func TestBusPanickingSubscriberDoesNotStopOthers(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	bus := newBus(t, events.BusConfig{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	_, err := bus.Subscribe("*", func(ctx context.Context, ev events.Event) error {
		panic(errors.New("boom"))
	}, events.WithName("panicky"))
	require.NoError(t, err)
	got := make(chan string, 10)
	_, err = bus.Subscribe("*", func(ctx context.Context, ev events.Event) error {
		got <- ev.EventName
		return nil
	})
	require.NoError(t, err)
	for i := range 10 {
		bus.Publish(newEvent(fmt.Sprintf("order.e%d", i)))
	}
	closeBus(t, bus)
	require.Len(t, got, 10)
	st := bus.Stats()
	require.Equal(t, uint64(10), st.Panics, "every panic is recovered and counted; the subscriber stayed alive")
	require.Equal(t, uint64(10), st.Delivered)
	require.Contains(t, logs.String(), `"msg":"stepevents bus: handler panicked"`)
	require.Contains(t, logs.String(), `"subscriber":"panicky"`)
	require.Contains(t, logs.String(), `"panic":"boom"`)
}

// blockedSubscriber subscribes a handler that signals entered for each
// event and then waits for release (or its ctx): closing release lets every
// call return, a send lets one.
func blockedSubscriber(t *testing.T, bus *events.Bus, opts ...events.SubscribeOption) (entered chan struct{}, release chan struct{}) {
	t.Helper()
	entered, release, _ = subscribeBlocked(t, bus, opts...)
	return entered, release
}

// subscribeBlocked is blockedSubscriber that also returns the unsubscribe func.
func subscribeBlocked(t *testing.T, bus *events.Bus, opts ...events.SubscribeOption) (entered, release chan struct{},
	unsubscribe func()) {
	t.Helper()
	entered, release = make(chan struct{}, 100), make(chan struct{}, 100)
	unsubscribe, err := bus.Subscribe("*", func(ctx context.Context, ev events.Event) error {
		entered <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, opts...)
	require.NoError(t, err)
	return entered, release, unsubscribe
}

func TestBusDropNewestCounts(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	bus := newBus(t, events.BusConfig{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	entered, release := blockedSubscriber(t, bus, events.WithQueueSize(2), events.WithName("tiny"))
	bus.Publish(newEvent("order.e0"))
	wait(t, entered, "the handler") // e0 is in the handler, the queue is empty
	for i := 1; i <= 5; i++ {
		bus.Publish(newEvent(fmt.Sprintf("order.e%d", i))) // e1, e2 queued; e3..e5 dropped
	}
	st := bus.Stats()
	require.Equal(t, uint64(3), st.Dropped)
	require.Equal(t, uint64(3), st.Dispatched)
	require.Len(t, st.Subscribers, 1)
	require.Equal(t, 2, st.Subscribers[0].QueueDepth)
	require.Equal(t, 2, st.Subscribers[0].QueueCapacity)
	require.Equal(t, "drop_newest", st.Subscribers[0].Policy)
	require.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("subscriber queue full")), "one warning per slow episode")
	close(release)
	closeBus(t, bus)
	require.Equal(t, uint64(3), bus.Stats().Delivered)
}

// busWithFullBlockQueue returns a bus with one Block(timeout) subscription
// of queue size 1 whose handler is busy with order.e0 while order.e1 fills
// the queue; closing release lets the handler return.
func busWithFullBlockQueue(t *testing.T, timeout time.Duration) (*events.Bus, chan struct{}) {
	t.Helper()
	bus := newBus(t, events.BusConfig{})
	entered, release := blockedSubscriber(t, bus, events.WithQueueSize(1), events.WithOverflow(events.Block(timeout)))
	bus.Publish(newEvent("order.e0"))
	wait(t, entered, "the handler")
	bus.Publish(newEvent("order.e1")) // fills the queue
	return bus, release
}

// publishConcurrently publishes order.w0 … order.w<n-1>, each from a
// goroutine of its own; Wait on the result waits for every Publish.
func publishConcurrently(bus *events.Bus, n int) *sync.WaitGroup {
	var published sync.WaitGroup
	for i := range n {
		published.Add(1)
		go func() {
			defer published.Done()
			bus.Publish(newEvent(fmt.Sprintf("order.w%d", i)))
		}()
	}
	return &published
}

func TestBusBlockPolicy(t *testing.T) {
	t.Parallel()
	bus, release := busWithFullBlockQueue(t, time.Hour)
	published := make(chan struct{})
	go func() {
		bus.Publish(newEvent("order.e2")) // waits for room
		close(published)
	}()
	select {
	case <-published:
		t.Fatal("Publish returned while the queue was full and the handler blocked")
	default:
	}
	require.Equal(t, uint64(2), bus.Stats().Dispatched)
	close(release)
	wait(t, published, "the blocked Publish")
	closeBus(t, bus)
	st := bus.Stats()
	require.Equal(t, uint64(3), st.Delivered)
	require.Zero(t, st.Dropped)
}

// Several publishers waiting for room in one queue all get in when several
// places free at once: the worker handles e1…e5 in a row, then sits on the
// first waiter's event, and the other waiters must still get the four free
// places. (A wake-up signal lost because two waiters were between their
// failed push and their wait is covered by waitForRoom passing the signal
// on; no test here controls that window.)
func TestBusBlockPolicyWakesEveryWaiter(t *testing.T) {
	t.Parallel()
	bus := newBus(t, events.BusConfig{})
	const waiters = 5
	entered, gate, hold := make(chan struct{}, 100), make(chan struct{}), make(chan struct{})
	_, err := bus.Subscribe("*", func(ctx context.Context, ev events.Event) error {
		entered <- struct{}{}
		wait := gate // order.e0 waits for gate, order.w* for hold, the rest return at once
		if strings.HasPrefix(ev.EventName, "order.w") {
			wait = hold
		} else if ev.EventName != "order.e0" {
			return nil
		}
		select {
		case <-wait:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, events.WithQueueSize(waiters), events.WithOverflow(events.Block(time.Hour)))
	require.NoError(t, err)
	bus.Publish(newEvent("order.e0"))
	wait(t, entered, "the handler")
	for i := 1; i <= waiters; i++ {
		bus.Publish(newEvent(fmt.Sprintf("order.e%d", i))) // fills the queue
	}
	published := publishConcurrently(bus, waiters)
	time.Sleep(20 * time.Millisecond) // let the publishers start waiting
	close(gate)
	done := make(chan struct{})
	go func() { published.Wait(); close(done) }()
	wait(t, done, "every blocked Publish while the handler holds the first waiter's event")
	close(hold)
	closeBus(t, bus)
	st := bus.Stats()
	require.Equal(t, uint64(1+2*waiters), st.Delivered)
	require.Zero(t, st.Dropped)
}

// Each subscriber sees every event in publish order, across the worker's
// batches and the queue's wrap-around.
func TestBusKeepsOrderAcrossBatches(t *testing.T) {
	t.Parallel()
	bus := newBus(t, events.BusConfig{})
	const n = 5000
	got := make([]string, 0, n)
	_, err := bus.Subscribe("order.*", func(ctx context.Context, ev events.Event) error {
		got = append(got, ev.EventName) // one worker per subscription: no race
		return nil
	}, events.WithQueueSize(7), events.WithOverflow(events.Block(time.Minute)))
	require.NoError(t, err)
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("order.e%d", i)
		bus.Publish(newEvent(want[i]))
	}
	closeBus(t, bus)
	require.Equal(t, want, got)
	require.Zero(t, bus.Stats().Dropped)
}

// Unsubscribing while the worker is in the middle of a batch and Block
// publishers wait for room: every event that got into the queue is
// delivered, failed or dropped, and nothing is written over the batch the
// worker is still reading (run under -race).
func TestBusUnsubscribeWhilePublishersWait(t *testing.T) {
	t.Parallel()
	for range 30 {
		bus := events.NewBus(events.BusConfig{})
		const capacity, waiters = 4, 16
		entered, release, unsubscribe := subscribeBlocked(t, bus, events.WithQueueSize(capacity),
			events.WithOverflow(events.Block(time.Hour)))
		bus.Publish(newEvent("order.e0"))
		wait(t, entered, "the handler")
		for i := 1; i <= capacity; i++ {
			bus.Publish(newEvent(fmt.Sprintf("order.e%d", i)))
		}
		published := publishConcurrently(bus, waiters)
		release <- struct{}{} // e0 returns; the worker takes the queue as one batch
		wait(t, entered, "the handler's second call")
		unsubscribe()
		published.Wait()
		closeBus(t, bus)
		st := bus.Stats()
		require.Equal(t, st.Dispatched, st.Delivered+st.HandlerErrors+st.Dropped, "%+v", st)
	}
}

func TestBusBlockPolicyTimesOut(t *testing.T) {
	t.Parallel()
	bus := newBus(t, events.BusConfig{})
	entered, release := blockedSubscriber(t, bus, events.WithQueueSize(1), events.WithOverflow(events.Block(time.Millisecond)))
	bus.Publish(newEvent("order.e0"))
	wait(t, entered, "the handler")
	bus.Publish(newEvent("order.e1"))
	bus.Publish(newEvent("order.e2")) // gives up after the timeout
	st := bus.Stats()
	require.Equal(t, uint64(1), st.Dropped)
	require.Equal(t, "block(1ms)", st.Subscribers[0].Policy)
	close(release)
}

func TestBusCloseDrains(t *testing.T) {
	t.Parallel()
	bus := events.NewBus(events.BusConfig{})
	entered, release := blockedSubscriber(t, bus)
	for i := range 20 {
		bus.Publish(newEvent(fmt.Sprintf("order.e%d", i)))
	}
	wait(t, entered, "the handler")
	closed := make(chan struct{})
	var rep events.CloseReport
	var err error
	go func() {
		rep, err = bus.Close(context.Background())
		close(closed)
	}()
	close(release)
	wait(t, closed, "Close")
	require.NoError(t, err)
	require.Zero(t, rep.Undelivered)
	require.LessOrEqual(t, rep.Queued, 19, "Close may seal the bus before or after the handler is released")
	require.Equal(t, uint64(20), bus.Stats().Delivered)

	bus.Publish(newEvent("order.late"))
	require.Equal(t, uint64(1), bus.Stats().Rejected)
	_, err = bus.Subscribe("*", func(context.Context, events.Event) error { return nil })
	require.ErrorIs(t, err, events.ErrClosed)
	rep2, err := bus.Close(context.Background())
	require.NoError(t, err)
	require.Equal(t, rep, rep2, "Close is idempotent")
}

func TestBusCloseReportsUndelivered(t *testing.T) {
	t.Parallel()
	bus := events.NewBus(events.BusConfig{})
	entered, _ := blockedSubscriber(t, bus) // never released: only ctx ends the handler
	for i := range 6 {
		bus.Publish(newEvent(fmt.Sprintf("order.e%d", i)))
	}
	wait(t, entered, "the handler")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := bus.Close(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, events.CloseReport{Queued: 5, Undelivered: 5}, rep)
	require.Contains(t, err.Error(), "closed with 5 of 5 queued events undelivered")

	// A second Close waits for the workers (the handler saw its ctx cancelled).
	rep2, err2 := bus.Close(context.Background())
	require.Equal(t, rep, rep2)
	require.Equal(t, err, err2)
	st := bus.Stats()
	require.Equal(t, uint64(1), st.HandlerErrors)
	require.Empty(t, st.Subscribers)
}

func TestBusUnsubscribeRemovesOnlyThatSubscription(t *testing.T) {
	t.Parallel()
	bus := newBus(t, events.BusConfig{})
	var a, b atomic.Int64
	unsubA, err := bus.Subscribe("order.*", func(context.Context, events.Event) error { a.Add(1); return nil })
	require.NoError(t, err)
	_, err = bus.Subscribe("order.*", func(context.Context, events.Event) error { b.Add(1); return nil })
	require.NoError(t, err)
	unsubA()
	unsubA() // idempotent
	bus.Publish(newEvent("order.validated"))
	st := bus.Stats()
	require.Len(t, st.Subscribers, 1)
	closeBus(t, bus)
	require.Zero(t, a.Load())
	require.Equal(t, int64(1), b.Load())
}

func TestBusHandlerErrorsAndTimeout(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	bus := newBus(t, events.BusConfig{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	_, err := bus.Subscribe("payment.>", func(ctx context.Context, ev events.Event) error {
		<-ctx.Done() // only the per-delivery timeout ends this
		return fmt.Errorf("gave up: %w", ctx.Err())
	}, events.WithHandlerTimeout(time.Millisecond), events.WithName("payments"))
	require.NoError(t, err)
	ev := newEvent("payment.failed.retryable")
	bus.Publish(ev)
	closeBus(t, bus)
	require.Equal(t, uint64(1), bus.Stats().HandlerErrors)
	var rec map[string]any
	require.NoError(t, json.Unmarshal(logs.Bytes(), &rec))
	require.Equal(t, "stepevents bus: handler error", rec["msg"])
	require.Equal(t, "payment.>", rec["pattern"])
	require.Equal(t, "payments", rec["subscriber"])
	require.Equal(t, "payment.failed.retryable", rec["event_name"])
	require.Equal(t, ev.EventID.String(), rec["event_id"])
	require.Contains(t, rec["err"], "context deadline exceeded")
}

func TestBusSubscribeRejectsInvalid(t *testing.T) {
	t.Parallel()
	bus := newBus(t, events.BusConfig{})
	ok := func(context.Context, events.Event) error { return nil }
	_, err := bus.Subscribe("pay*", ok)
	require.ErrorIs(t, err, events.ErrInvalidInput)
	require.Contains(t, err.Error(), `"pay*"`)
	_, err = bus.Subscribe("*", nil)
	require.ErrorIs(t, err, events.ErrInvalidInput)
	_, err = bus.Subscribe("*", ok, events.WithQueueSize(0))
	require.ErrorContains(t, err, "queue size must be > 0")
	_, err = bus.Subscribe("*", ok, events.WithOverflow(events.Block(0)))
	require.ErrorContains(t, err, "Block needs a timeout > 0")
	_, err = bus.SubscribeGap(nil)
	require.ErrorIs(t, err, events.ErrInvalidInput)
}

func TestBusRoutesByPattern(t *testing.T) {
	t.Parallel()
	bus := newBus(t, events.BusConfig{})
	var mu sync.Mutex
	got := map[string][]string{}
	for _, p := range []string{"*", "payment.*", "payment.>", "payment.processed", "*.failed.*", "order.validated"} {
		_, err := bus.Subscribe(p, func(_ context.Context, ev events.Event) error {
			mu.Lock()
			defer mu.Unlock()
			got[p] = append(got[p], ev.EventName)
			return nil
		})
		require.NoError(t, err)
	}
	for _, n := range []string{"payment.processed", "payment.failed.retryable", "order.validated"} {
		bus.Publish(newEvent(n))
	}
	closeBus(t, bus)
	require.Equal(t, map[string][]string{
		"*":                 {"payment.processed", "payment.failed.retryable", "order.validated"},
		"payment.*":         {"payment.processed"},
		"payment.>":         {"payment.processed", "payment.failed.retryable"},
		"payment.processed": {"payment.processed"},
		"*.failed.*":        {"payment.failed.retryable"},
		"order.validated":   {"order.validated"},
	}, got)
}

func TestBusGapSignals(t *testing.T) {
	t.Parallel()
	bus := newBus(t, events.BusConfig{})
	gaps := make(chan events.GapSignal, 1)
	_, err := bus.SubscribeGap(func(g events.GapSignal) { gaps <- g })
	require.NoError(t, err)
	var order []string
	_, err = bus.Subscribe("*", func(_ context.Context, ev events.Event) error {
		order = append(order, ev.EventName)
		return nil
	}, events.WithGapHandler(func(g events.GapSignal) { order = append(order, fmt.Sprintf("gap#%d", g.Reconnects)) }))
	require.NoError(t, err)
	bus.Publish(newEvent("order.before"))
	bus.PublishGap(events.GapSignal{Channel: "c", Reconnects: 1})
	bus.Publish(newEvent("order.after"))
	closeBus(t, bus)
	require.Equal(t, []string{"order.before", "gap#1", "order.after"}, order, "a gap arrives in order with the events")
	require.Equal(t, uint64(1), (<-gaps).Reconnects)
	st := bus.Stats()
	require.Equal(t, uint64(1), st.Gaps)
	require.Equal(t, uint64(2), st.Delivered, "gaps are not counted as events")
}

// TestGapSignalJSON: the kind is encoded by name, and a GapSignal without
// one is a reconnect, as every gap was before kinds existed.
func TestGapSignalJSON(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	raw, err := json.Marshal(events.GapSignal{Kind: events.GapOverflow, Channel: "c", Since: since, Dropped: 7, Cause: "full"})
	require.NoError(t, err)
	require.JSONEq(t, `{"kind":"overflow","channel":"c","reconnects":0,"since":"2026-01-02T03:04:05Z","dropped":7,"cause":"full"}`,
		string(raw))
	var back events.GapSignal
	require.NoError(t, json.Unmarshal(raw, &back))
	require.Equal(t, events.GapOverflow, back.Kind)
	require.Equal(t, uint64(7), back.Dropped)

	var old events.GapSignal
	require.NoError(t, json.Unmarshal([]byte(`{"channel":"c","reconnects":2}`), &old))
	require.Equal(t, events.GapReconnect, old.Kind)
	require.Error(t, json.Unmarshal([]byte(`{"kind":"sideways"}`), &old))
	for k, want := range map[events.GapKind]string{events.GapReconnect: "reconnect", events.GapOverflow: "overflow",
		events.GapUnresolved: "unresolved", events.GapKind(9): "GapKind(9)"} {
		require.Equal(t, want, k.String())
	}
}

// TestBusKeepsEveryDeferredGap: gaps that find a subscription's queue full
// are all delivered once its worker is free, a run of one kind merged.
func TestBusKeepsEveryDeferredGap(t *testing.T) {
	t.Parallel()
	bus := newBus(t, events.BusConfig{})
	entered, release := make(chan struct{}), make(chan struct{})
	var order []string
	var gaps []events.GapSignal
	_, err := bus.Subscribe("*", func(_ context.Context, ev events.Event) error {
		order = append(order, ev.EventName)
		if ev.EventName == "order.first" {
			close(entered)
			<-release
		}
		return nil
	}, events.WithQueueSize(1), events.WithGapHandler(func(g events.GapSignal) {
		order = append(order, fmt.Sprintf("gap:%s:%d", g.Kind, g.Dropped))
		gaps = append(gaps, g)
	}))
	require.NoError(t, err)
	bus.Publish(newEvent("order.first"))
	<-entered
	bus.Publish(newEvent("order.second")) // fills the queue
	t0 := time.Now()
	bus.PublishGap(events.GapSignal{Kind: events.GapOverflow, Since: t0.Add(time.Second), Dropped: 2})
	bus.PublishGap(events.GapSignal{Kind: events.GapOverflow, Since: t0, Dropped: 3})
	bus.PublishGap(events.GapSignal{Kind: events.GapUnresolved, Since: t0, Dropped: 1})
	bus.PublishGap(events.GapSignal{Kind: events.GapReconnect, Reconnects: 4})
	close(release)
	closeBus(t, bus)
	require.Equal(t, []string{"order.first", "gap:overflow:5", "gap:unresolved:1", "gap:reconnect:0", "order.second"}, order)
	require.True(t, gaps[0].Since.Equal(t0), "the merged gap began with the earlier one")
	require.Equal(t, uint64(4), gaps[2].Reconnects)
	require.Equal(t, uint64(4), bus.Stats().Gaps)
}

func TestBusStatsJSON(t *testing.T) {
	t.Parallel()
	bus := newBus(t, events.BusConfig{})
	_, err := bus.Subscribe("order.*", func(context.Context, events.Event) error { return nil }, events.WithName("orders"))
	require.NoError(t, err)
	b, err := json.Marshal(bus.Stats())
	require.NoError(t, err)
	for _, k := range []string{`"published":`, `"dispatched":`, `"delivered":`, `"handler_errors":`, `"panics":`,
		`"dropped":`, `"subscribers":[{`, `"queue_depth":`, `"queue_capacity":`, `"pattern":"order.*"`, `"name":"orders"`} {
		require.Contains(t, string(b), k)
	}
}

func TestBusPublishDoesNotAllocate(t *testing.T) {
	bus := newBus(t, events.BusConfig{QueueSize: 1})
	// Handlers that never finish during the measurement: AllocsPerRun counts
	// every goroutine's allocations, and a worker that caught up would log
	// (and allocate) "caught up" and then "queue full" again.
	release := make(chan struct{})
	for range 10 {
		_, err := bus.Subscribe("order.*", func(ctx context.Context, _ events.Event) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})
		require.NoError(t, err)
	}
	ev := newEvent("order.validated")
	n := testing.AllocsPerRun(200, func() { bus.Publish(ev) })
	close(release)
	require.Zero(t, n)
}

// BenchmarkBusDispatch measures Publish to 1, 10 and 100 matching
// subscribers (among as many non-matching ones) whose handlers do nothing.
// Publishing outpaces the workers, so part of the events are dropped: the
// number is the publisher's cost, which must not allocate.
func BenchmarkBusDispatch(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			bus := events.NewBus(events.BusConfig{})
			for i := range n {
				_, err := bus.Subscribe("order.*", func(context.Context, events.Event) error { return nil })
				require.NoError(b, err)
				_, err = bus.Subscribe(fmt.Sprintf("other%d.>", i), func(context.Context, events.Event) error { return nil })
				require.NoError(b, err)
			}
			ev := newEvent("order.validated")
			b.ReportAllocs()
			for b.Loop() {
				bus.Publish(ev)
			}
			b.StopTimer()
			st := bus.Stats()
			b.ReportMetric(float64(st.Dropped)/float64(st.Dropped+st.Dispatched), "drop_ratio")
			_, err := bus.Close(context.Background())
			require.NoError(b, err)
		})
	}
}

// BenchmarkBusDeliver measures what BenchmarkBusDispatch does not: every
// event delivered to every matching subscriber. Subscriptions Block
// (nothing is dropped; the run fails if anything is) and the clock stops
// when Close has drained the last queue, so the figure is events per
// second through publisher, queues and workers, on the machine's cores.
func BenchmarkBusDeliver(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			bus := events.NewBus(events.BusConfig{})
			var delivered atomic.Int64
			for i := range n {
				_, err := bus.Subscribe("order.*", func(context.Context, events.Event) error {
					delivered.Add(1)
					return nil
				}, events.WithOverflow(events.Block(time.Minute)))
				require.NoError(b, err)
				_, err = bus.Subscribe(fmt.Sprintf("other%d.>", i), func(context.Context, events.Event) error { return nil })
				require.NoError(b, err)
			}
			ev := newEvent("order.validated")
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				bus.Publish(ev)
			}
			_, err := bus.Close(context.Background())
			require.NoError(b, err)
			b.StopTimer()
			require.Equal(b, int64(b.N*n), delivered.Load(), "every event delivered to every subscriber")
			require.Zero(b, bus.Stats().Dropped)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
