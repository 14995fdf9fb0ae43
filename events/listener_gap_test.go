package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/test/testdb"
)

// sequenceRecorder is a subscriber that records what it receives, events
// and gaps, in the one order it receives them.
type sequenceRecorder struct {
	mu   sync.Mutex
	seen []string
	gaps []events.GapSignal
}

func recordSequence(t *testing.T, bus *events.Bus) *sequenceRecorder {
	t.Helper()
	r := &sequenceRecorder{}
	_, err := bus.Subscribe("*", func(_ context.Context, ev events.Event) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.seen = append(r.seen, ev.EventName)
		return nil
	}, events.WithName("sequence"), events.WithQueueSize(1024), events.WithGapHandler(func(g events.GapSignal) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.seen = append(r.seen, fmt.Sprintf("gap:%s:%d", g.Kind, g.Dropped))
		r.gaps = append(r.gaps, g)
	}))
	require.NoError(t, err)
	return r
}

func (r *sequenceRecorder) sequence() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func (r *sequenceRecorder) gapSignals() []events.GapSignal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.GapSignal(nil), r.gaps...)
}

// waitFor waits until the recorder has received want and returns what it
// received, want last; it fails with what it received instead.
func (r *sequenceRecorder) waitFor(t *testing.T, want string) []string {
	t.Helper()
	s, ok := poll(func() ([]string, bool) {
		s := r.sequence()
		return s, len(s) > 0 && s[len(s)-1] == want
	})
	require.True(t, ok, "%q never arrived; received %v", want, s)
	return s
}

// poll calls f until it reports true or waitTimeout passes, and returns
// its last result.
func poll[T any](f func() (T, bool)) (T, bool) {
	deadline := time.Now().Add(waitTimeout)
	for {
		v, ok := f()
		if ok || time.Now().After(deadline) {
			return v, ok
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stallRig is a listener whose dispatcher a test can hold up: a Block
// subscriber to test.stall.* with a queue of one handles each event only
// once it is given a token, so the third stall event makes the dispatcher
// wait in Publish and notifications pile up in the listener's hand-off.
type stallRig struct {
	pool     *pgxpool.Pool
	bus      *events.Bus
	listener *events.Listener
	rec      *sequenceRecorder
	entered  chan string
	tokens   chan struct{}
	release  func()
}

func newStallRig(t *testing.T, pending int) *stallRig {
	t.Helper()
	r := &stallRig{pool: testdb.New(t), bus: newBus(t, events.BusConfig{}),
		entered: make(chan string, 16), tokens: make(chan struct{}, 16)}
	r.rec = recordSequence(t, r.bus)
	_, err := r.bus.Subscribe("test.stall.*", func(ctx context.Context, ev events.Event) error {
		r.entered <- ev.EventName
		select {
		case <-r.tokens:
		case <-ctx.Done():
		}
		return nil
	}, events.WithName("stall"), events.WithQueueSize(1), events.WithOverflow(events.Block(time.Minute)))
	require.NoError(t, err)
	r.listener, err = events.NewListener(r.pool, r.bus, events.ListenerConfig{PendingEnvelopes: pending})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, r.listener.Start(ctx))
	t.Cleanup(func() { require.NoError(t, r.listener.Close()) })
	var once sync.Once
	// After release every handler call returns at once. It runs before the
	// listener stops, whose dispatcher may be waiting in Publish.
	r.release = func() { once.Do(func() { close(r.tokens) }) }
	t.Cleanup(r.release)
	return r
}

func (r *stallRig) notify(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		notify(t, r.pool, wireFor(t, n, nil))
	}
}

// health waits until the listener's counters satisfy cond.
func (r *stallRig) health(t *testing.T, what string, cond func(events.ListenerHealth) bool) {
	t.Helper()
	h, ok := r.reached(cond)
	require.True(t, ok, "waiting until %s; health %+v", what, h)
}

// reached waits until the listener's counters satisfy cond and reports
// whether they did, with the last counters read.
func (r *stallRig) reached(cond func(events.ListenerHealth) bool) (events.ListenerHealth, bool) {
	return poll(func() (events.ListenerHealth, bool) {
		h := r.listener.Health(context.Background())
		return h, cond(h)
	})
}

// stall holds the dispatcher up in Publish of test.stall.3: stall.1 is in
// the handler, stall.2 fills the queue.
func (r *stallRig) stall(t *testing.T) {
	t.Helper()
	r.notify(t, "test.stall.1")
	select {
	case got := <-r.entered:
		require.Equal(t, "test.stall.1", got)
	case <-time.After(waitTimeout):
		t.Fatal("the stall subscriber never received test.stall.1")
	}
	r.notify(t, "test.stall.2", "test.stall.3")
	r.health(t, "the dispatcher waits in Publish of test.stall.3", func(h events.ListenerHealth) bool {
		return h.Published == 3 && h.Pending == 0
	})
}

func requireOverflowGap(t *testing.T, g events.GapSignal, dropped uint64, start time.Time) {
	t.Helper()
	require.Equal(t, events.GapOverflow, g.Kind)
	require.Equal(t, "overflow", g.Kind.String())
	require.Equal(t, dropped, g.Dropped)
	require.Equal(t, events.DefaultChannel, g.Channel)
	require.False(t, g.Since.Before(start), "Since %s is when the first notification was dropped, after %s", g.Since, start)
	require.False(t, g.Since.After(time.Now()))
	require.Contains(t, g.Cause, "PendingEnvelopes")
	require.True(t, g.DisconnectedAt.IsZero() && g.ReconnectedAt.IsZero(), "no reconnect: %+v", g)
}

// TestListenerGapOverflowWhenIdle: notifications dropped because the
// dispatcher was behind reach subscribers as one GapOverflow, after the
// events received before the drops, even when nothing is notified after them.
func TestListenerGapOverflowWhenIdle(t *testing.T) {
	t.Parallel()
	r := newStallRig(t, 2)
	start := time.Now()
	r.stall(t)
	r.notify(t, "test.before.1", "test.before.2")
	r.health(t, "the hand-off is full", func(h events.ListenerHealth) bool { return h.Pending == 2 })
	r.notify(t, "test.lost.1", "test.lost.2", "test.lost.3")
	r.health(t, "three notifications dropped", func(h events.ListenerHealth) bool { return h.DroppedOverflow == 3 })

	r.release()
	r.rec.waitFor(t, "gap:overflow:3") // the dispatcher emptied the hand-off; no notification came since
	r.notify(t, "test.after.1")
	require.Equal(t, []string{"test.stall.1", "test.stall.2", "test.stall.3", "test.before.1", "test.before.2",
		"gap:overflow:3", "test.after.1"}, r.rec.waitFor(t, "test.after.1"))
	gaps := r.rec.gapSignals()
	require.Len(t, gaps, 1)
	requireOverflowGap(t, gaps[0], 3, start)
	h := r.listener.Health(context.Background())
	require.Equal(t, uint64(3), h.DroppedOverflow)
	require.Equal(t, uint64(1), r.bus.Stats().Gaps)
}

// TestListenerGapOverflowBeforeNextEvent: when the next notification finds
// room in the hand-off while the dispatcher is still behind, the gap goes
// in ahead of it, so subscribers get it exactly where the drops happened.
func TestListenerGapOverflowBeforeNextEvent(t *testing.T) {
	t.Parallel()
	r := newStallRig(t, 3)
	start := time.Now()
	r.stall(t)
	r.notify(t, "test.before.1", "test.stall.4", "test.before.2")
	r.health(t, "the hand-off is full", func(h events.ListenerHealth) bool { return h.Pending == 3 })
	r.notify(t, "test.lost.1", "test.lost.2", "test.lost.3", "test.lost.4")
	r.health(t, "four notifications dropped", func(h events.ListenerHealth) bool { return h.DroppedOverflow == 4 })

	// One token: the dispatcher hands over test.stall.3 and test.before.1,
	// then waits in Publish of test.stall.4, test.before.2 still pending.
	r.tokens <- struct{}{}
	r.health(t, "the dispatcher waits in Publish of test.stall.4", func(h events.ListenerHealth) bool {
		return h.Published == 5 && h.Pending == 1
	})
	r.notify(t, "test.after.1")
	h, handedOff := r.reached(func(h events.ListenerHealth) bool { return h.Pending == 3 })
	require.NotContains(t, r.rec.sequence(), "gap:overflow:4", "the gap waits behind test.before.2")

	r.release()
	require.Equal(t, []string{"test.stall.1", "test.stall.2", "test.stall.3", "test.before.1", "test.stall.4",
		"test.before.2", "gap:overflow:4", "test.after.1"}, r.rec.waitFor(t, "test.after.1"))
	require.True(t, handedOff, "the read loop handed the gap and test.after.1 off behind test.before.2; health %+v", h)
	gaps := r.rec.gapSignals()
	require.Len(t, gaps, 1)
	requireOverflowGap(t, gaps[0], 4, start)
	require.Equal(t, uint64(4), r.listener.Health(context.Background()).DroppedOverflow)
}

// wireEnv builds an unsigned NOTIFY payload carrying env.
func wireEnv(t *testing.T, env events.Envelope) string {
	t.Helper()
	raw, err := json.Marshal(env)
	require.NoError(t, err)
	out, err := json.Marshal(map[string]any{"v": 1, "env": json.RawMessage(raw)})
	require.NoError(t, err)
	return string(out)
}

// stash stores event in the stash the listener resolves references from.
func stash(t *testing.T, pool *pgxpool.Pool, event string) uuid.UUID {
	t.Helper()
	id := uuid.New()
	_, err := pool.Exec(context.Background(), `INSERT INTO stepevents.fast_event_stash (event_id, event) VALUES ($1, $2)`, id, event)
	require.NoError(t, err)
	return id
}

func stashedEvent(t *testing.T, name string) string {
	t.Helper()
	ev, err := json.Marshal(events.Event{EventID: uuid.New(), EventName: name, EventVersion: events.EventVersion})
	require.NoError(t, err)
	return string(ev)
}

// TestListenerGapUnresolved: stash references that cannot be resolved (the
// row is gone, never existed, or does not hold a valid event) reach
// subscribers as a GapUnresolved in their place, between the events around them.
func TestListenerGapUnresolved(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	bus := newBus(t, events.BusConfig{})
	rec := recordSequence(t, bus)
	l, err := events.NewListener(pool, bus, events.ListenerConfig{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, l.Start(ctx))
	t.Cleanup(func() { require.NoError(t, l.Close()) })

	good1 := stash(t, pool, stashedEvent(t, "test.stashed.1"))
	good2 := stash(t, pool, stashedEvent(t, "test.stashed.2"))
	pruned := stash(t, pool, stashedEvent(t, "test.pruned"))
	_, err = pool.Exec(ctx, `DELETE FROM stepevents.fast_event_stash WHERE event_id = $1`, pruned)
	require.NoError(t, err)
	forged := uuid.New()
	invalid := stash(t, pool, `{"event_id": "`+uuid.NewString()+`", "event_name": "Not A Valid Name!"}`)

	start := time.Now()
	notify(t, pool, wireFor(t, "test.before", nil))
	notify(t, pool, wireEnv(t, events.Envelope{Refs: []uuid.UUID{good1, pruned, forged, good2, invalid}}))
	notify(t, pool, wireFor(t, "test.after", nil))

	require.Equal(t, []string{"test.before", "test.stashed.1", "gap:unresolved:2", "test.stashed.2",
		"gap:unresolved:1", "test.after"}, rec.waitFor(t, "test.after"))
	gaps := rec.gapSignals()
	require.Len(t, gaps, 2)
	for _, g := range gaps {
		require.Equal(t, events.GapUnresolved, g.Kind)
		require.Equal(t, "unresolved", g.Kind.String())
		require.Equal(t, events.DefaultChannel, g.Channel)
		require.False(t, g.Since.Before(start))
		require.False(t, g.Since.After(time.Now()))
	}
	require.Equal(t, uint64(2), gaps[0].Dropped)
	require.Contains(t, gaps[0].Cause, pruned.String()+" not found", "the cause of the first of the run")
	require.Equal(t, uint64(1), gaps[1].Dropped)
	require.Contains(t, gaps[1].Cause, invalid.String()+" does not decode")

	h := l.Health(ctx)
	require.Equal(t, uint64(2), h.RefsResolved)
	require.Equal(t, uint64(3), h.RefErrors)
	require.Zero(t, h.Reconnects)
}
