package fault_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

// listenerKills is how many times TestListenerSurvivesRepeatedTermination
// terminates the listener's backend.
const listenerKills = 5

// TestListenerSurvivesRepeatedTermination terminates the listener's backend
// again and again while a producer completes orders (fast, broadcast and
// durable events). The listener reconnects every time, each reconnect
// reaches subscribers as a gap signal, and the durable events are all in
// pgmq: what the fast path loses while it is down, the queue still has.
func TestListenerSurvivesRepeatedTermination(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	client := f.newClient(t, f.pool, events.FastAfterCommit)
	l, capture := f.listen(t, f.pool)

	p := &producer{client: client, f: f}
	var wg sync.WaitGroup
	wg.Go(p.run)
	defer func() { p.stop.Store(true); wg.Wait() }()

	for i := 1; i <= listenerKills; i++ {
		// Let events flow on this connection before killing it.
		done := p.completed.Load()
		eventually(t, waitTimeout, "the producer to complete more steps", func() bool { return p.completed.Load() >= done+4 })
		h := l.Health(f.ctx)
		require.True(t, h.Connected)
		require.NoError(t, terminate(f.ctx, f.pool, h.BackendPID))
		eventually(t, waitTimeout, fmt.Sprintf("reconnect %d", i), func() bool {
			h := l.Health(f.ctx)
			return h.Connected && h.Reconnects >= uint64(i)
		})
		require.True(t, capture.WaitForGaps(i, waitTimeout), "no gap signal for reconnect %d", i)
	}
	done := p.completed.Load()
	eventually(t, waitTimeout, "the producer to go on after the last reconnect", func() bool { return p.completed.Load() >= done+4 })
	p.stop.Store(true)
	wg.Wait()
	require.NoError(t, p.err)

	h := l.Health(f.ctx)
	require.Equal(t, uint64(listenerKills), h.Reconnects)
	gaps := capture.Gaps()
	require.Len(t, gaps, listenerKills, "one gap signal per reconnect")
	for i, g := range gaps {
		require.Equal(t, uint64(i+1), g.Reconnects)
		require.NotEmpty(t, g.Cause)
	}

	// Every durable copy is in the queue, once, and nothing else is.
	want := map[uuid.UUID]int{}
	for _, id := range p.durable {
		want[id]++
	}
	require.NotEmpty(t, want)
	require.Equal(t, want, f.queuedEventIDs(t))

	// The fast path works after the last reconnect: a fresh completion arrives.
	o, err := newOrder(f.ctx, f.pool)
	require.NoError(t, err)
	_, err = events.StartStep(f.ctx, f.pool, o.steps[stepValidate])
	require.NoError(t, err)
	comp, err := client.CompleteStep(f.ctx, o.steps[stepValidate], resultFor(stepValidate, o.id))
	require.NoError(t, err)
	eventually(t, waitTimeout, "the fresh fast event", func() bool {
		return slices.Contains(eventIDs(capture.Events()), comp.Published[0].EventID)
	})
	t.Logf("%d steps completed, %d durable events, %d fast events received over %d reconnects",
		p.completed.Load(), len(p.durable), capture.Count(), h.Reconnects)
}

// producer completes fixture orders step by step until stop is set,
// remembering the event id of every durable copy it published. It stops
// between completions, never by cancelling one: a completion cancelled
// while its COMMIT is in flight may commit with the caller told it failed,
// leaving a durable event the producer did not count.
type producer struct {
	client *events.Client
	f      *fixture

	stop      atomic.Bool
	completed atomic.Int64
	durable   []uuid.UUID // written by run only; read after it returns
	err       error
}

func (p *producer) run() {
	ctx := p.f.ctx
	for !p.stop.Load() {
		o, err := newOrder(ctx, p.f.pool)
		if err != nil {
			p.err = err
			return
		}
		for _, name := range stepOrder {
			if _, err := events.StartStep(ctx, p.f.pool, o.steps[name]); err != nil {
				p.err = err
				return
			}
			comp, err := p.client.CompleteStep(ctx, o.steps[name], resultFor(name, o.id))
			if err != nil {
				p.err = err
				return
			}
			for _, pub := range comp.Published {
				if pub.Mode != template.DeliveryFast {
					p.durable = append(p.durable, pub.EventID)
				}
			}
			p.completed.Add(1)
		}
	}
}

func eventIDs(evs []events.Event) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.EventID)
	}
	return out
}
