package events

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A closed queue refuses every push, even with room: an unsubscribed
// worker frees places while it still reads its last batch in place, and a
// late publisher must not write over it.
func TestClosedDeliveryQueueRefusesPush(t *testing.T) {
	q := newTestQueue(4)
	for range 4 {
		require.True(t, q.push(delivery{}))
	}
	start, count := q.take()
	require.Equal(t, 4, count)
	q.close()
	q.picked(q.at(start, 0))
	require.False(t, q.push(delivery{}), "push after close")
	require.Equal(t, 3, q.len())
}

// The ring wraps: deliveries come out in the order they went in, and the
// bound is the capacity whether they sit in the ring or in a taken batch.
func TestDeliveryQueueWrapsInOrder(t *testing.T) {
	q := newTestQueue(3)
	next, want := 0, 0
	push := func() bool {
		ok := q.push(delivery{ev: Event{EventVersion: string(rune('a' + next%26))}})
		if ok {
			next++
		}
		return ok
	}
	for range 10 {
		for push() {
		}
		require.Equal(t, 3, q.len())
		start, count := q.take()
		require.False(t, push(), "taken but not picked still counts against the bound")
		for k := range count {
			d := q.at(start, k)
			require.Equal(t, string(rune('a'+want%26)), d.ev.EventVersion)
			want++
			q.picked(d)
		}
		require.Zero(t, q.len())
	}
}

func newTestQueue(capacity int) *deliveryQueue {
	return newDeliveryQueue(capacity, new(atomic.Uint64), new(atomic.Uint64))
}

// A gap kept for later because the queue was full must wake a worker that
// emptied its queue and parked in the meantime.
func TestDeferredGapWakesAParkedWorker(t *testing.T) {
	bus := NewBus(BusConfig{})
	defer bus.Close(context.Background())
	got := make(chan struct{}, 1)
	_, err := bus.Subscribe("*", func(context.Context, Event) error { return nil },
		WithGapHandler(func(GapSignal) { got <- struct{}{} }))
	require.NoError(t, err)
	bus.mu.Lock()
	s := bus.subs[0]
	bus.mu.Unlock()
	require.Eventually(t, func() bool {
		s.queue.mu.Lock()
		defer s.queue.mu.Unlock()
		return s.queue.parked
	}, 5*time.Second, time.Millisecond, "the worker parks on its empty queue")
	s.deferGap(GapSignal{Reconnects: 1})
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the parked worker never delivered the deferred gap")
	}
}

// Merged kept gaps keep the first loss's Cause, as GapSignal documents.
func TestMergeGapKeepsFirstCause(t *testing.T) {
	t.Parallel()
	g := GapSignal{Kind: GapUnresolved, Dropped: 1, Cause: "not found"}
	mergeGap(&g, GapSignal{Kind: GapUnresolved, Dropped: 2, Cause: "invalid event"})
	require.Equal(t, "not found", g.Cause)
	require.Equal(t, uint64(3), g.Dropped)
}
