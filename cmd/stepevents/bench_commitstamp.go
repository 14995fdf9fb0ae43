package main

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// commitStamp is where commitStamper writes when a completion's COMMIT left
// the client: the start of the commit → handler clock of fast events.
// Client.CompleteStep sends COMMIT itself (alone, or pipelined with
// emit_events), so the bench cannot stamp it by hand; the op passes a
// commitStamp in its context and reads it once CompleteStep returns.
type commitStamp struct{ at time.Time }

type commitStampKey struct{}

func withCommitStamp(ctx context.Context, s *commitStamp) context.Context {
	return context.WithValue(ctx, commitStampKey{}, s)
}

// commitStamper is the bench pool's pgx tracer: it stamps the commitStamp
// of the statement's context, if any, when a COMMIT is sent, alone or in a
// batch (a pipelined COMMIT is stamped when its batch is sent, so the
// clock also runs while emit_events executes ahead of it). Other
// statements, and contexts without a stamp, cost a type assertion.
type commitStamper struct{}

func stampCommit(ctx context.Context) {
	if s, ok := ctx.Value(commitStampKey{}).(*commitStamp); ok {
		s.at = time.Now()
	}
}

func (commitStamper) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if d.SQL == "COMMIT" {
		stampCommit(ctx)
	}
	return ctx
}

func (commitStamper) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (commitStamper) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	if d.Batch != nil {
		for _, q := range d.Batch.QueuedQueries {
			if q.SQL == "COMMIT" {
				stampCommit(ctx)
				break
			}
		}
	}
	return ctx
}

func (commitStamper) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (commitStamper) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// arrivals matches fast deliveries with their expectations when the
// delivery may come first: CompleteStep releases after-commit fast events
// before it returns their ids. Deliveries no recorder expects yet wait here
// for their expect; one lock orders the two.
type arrivals struct {
	mu    sync.Mutex
	early map[uuid.UUID]time.Time
}

func newArrivals() *arrivals { return &arrivals{early: map[uuid.UUID]time.Time{}} }

// deliver hands id to the recorder expecting it, or keeps it for expect.
func (a *arrivals) deliver(id uuid.UUID, recorders []*deliveryRecorder) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range recorders {
		if r.deliverAt(id, now) {
			return
		}
	}
	a.early[id] = now
}

// expect registers id with r, timed from at, or records it at once if it
// was delivered already.
func (a *arrivals) expect(r *deliveryRecorder, id uuid.UUID, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if got, ok := a.early[id]; ok {
		delete(a.early, id)
		r.recordAt(got.Sub(at))
		return
	}
	r.expect(id, at)
}

// reset forgets deliveries nobody expected (between slices).
func (a *arrivals) reset() {
	a.mu.Lock()
	clear(a.early)
	a.mu.Unlock()
}
