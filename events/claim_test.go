package events_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/examples/publishers"
)

// TestClaimedRecordingIsFenced: an outcome recorded under a claim is
// recorded only while the step is in progress under that claim. A claim
// that never was, a claim whose attempt was released and claimed again,
// and a claim whose outcome is already recorded all get ErrSuperseded and
// change nothing: the step keeps its state and no event reaches the queue.
func TestClaimedRecordingIsFenced(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// record records an outcome of payment under claim.
		record func(b *bundle, step uuid.UUID, claim int64) (*events.Completion, error)
		after  string // the step's state once the current claim recorded
	}{
		{"Complete", func(b *bundle, step uuid.UUID, claim int64) (*events.Completion, error) {
			return b.client.CompleteClaimedStep(b.ctx, step, claim, json.RawMessage(`{"transaction_id":"txn-1","amount":42.5}`))
		}, "complete"},
		{"Fail", func(b *bundle, step uuid.UUID, claim int64) (*events.Completion, error) {
			return b.client.FailClaimedStep(b.ctx, step, claim, events.Failure{Message: "card stolen", Type: "PaymentError",
				Permanent: true})
		}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			_, steps := b.newTask(t)
			b.complete(t, steps[stepValidate], validResult)
			before := len(b.queueRows(t))
			payment := steps[stepPayment]
			state := func() string {
				s, err := events.GetStep(b.ctx, b.pool, payment)
				require.NoError(t, err)
				return s.State
			}
			refused := func(claim int64, want string) {
				t.Helper()
				_, err := tc.record(b, payment, claim)
				require.ErrorIs(t, err, events.ErrSuperseded)
				require.Equal(t, want, state(), "a refused outcome changes nothing")
				require.Len(t, b.queueRows(t), before, "a refused outcome publishes nothing")
			}

			first, err := events.StartStep(b.ctx, b.pool, payment)
			require.NoError(t, err)
			require.Positive(t, first.ClaimID, "StartStep returns the claim")
			refused(first.ClaimID+1000, "in_progress")

			// The first attempt is released (presumed hung) and the step
			// claimed again: the first claim's late outcome is refused.
			_, err = events.ReleaseStep(b.ctx, b.pool, payment, "test: worker presumed hung")
			require.NoError(t, err)
			second, err := events.StartStep(b.ctx, b.pool, payment)
			require.NoError(t, err)
			require.NotEqual(t, first.ClaimID, second.ClaimID, "claims are never reused")
			require.Equal(t, first.Attempts, second.Attempts, "release refunded the attempt number")
			refused(first.ClaimID, "in_progress")

			comp, err := tc.record(b, payment, second.ClaimID)
			require.NoError(t, err)
			require.Equal(t, tc.after, comp.Step.State)
			require.Equal(t, second.ClaimID, comp.Step.ClaimID)
			require.Greater(t, len(b.queueRows(t)), before, "the current claim's outcome publishes")

			// Recorded once: the same claim cannot record again.
			after := len(b.queueRows(t))
			before = after
			refused(second.ClaimID, tc.after)
		})
	}
}

// roundTrips counts what a pool sends to the server: a batch or a lone
// statement is one round trip. The notifier's pg_notify (after commit, on
// a connection of its own) is not part of a completion.
type roundTrips struct {
	mu   sync.Mutex
	sent []string
}

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !strings.Contains(d.SQL, "pg_notify") {
		r.mu.Lock()
		r.sent = append(r.sent, d.SQL)
		r.mu.Unlock()
	}
	return ctx
}

func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	var parts []string
	for _, q := range d.Batch.QueuedQueries {
		parts = append(parts, q.SQL)
	}
	r.mu.Lock()
	r.sent = append(r.sent, "batch: "+strings.Join(parts, " ; "))
	r.mu.Unlock()
	return ctx
}

func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (r *roundTrips) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	return out
}

// TestClaimedRecordingTakesTwoRoundTrips: the fence costs no round trip:
// BEGIN travels with record_step_result (which checks the claim), COMMIT
// with emit_events, as for CompleteStep.
func TestClaimedRecordingTakesTwoRoundTrips(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, steps := b.newTask(t)

	cfg := b.pool.Config()
	rt := &roundTrips{}
	cfg.ConnConfig.Tracer = rt
	pool, err := pgxpool.NewWithConfig(b.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	client, err := events.NewClient(b.ctx, pool, &events.Config{Publishers: publishers.All()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close(context.Background())) })

	// The client's first completion of a template also loads its
	// declarations, once.
	v, err := events.StartStep(b.ctx, b.pool, steps[stepValidate])
	require.NoError(t, err)
	_, err = client.CompleteClaimedStep(b.ctx, v.StepUUID, v.ClaimID, json.RawMessage(validResult))
	require.NoError(t, err)
	s, err := events.StartStep(b.ctx, b.pool, steps[stepPayment])
	require.NoError(t, err)

	rt.take()
	comp, err := client.CompleteClaimedStep(b.ctx, s.StepUUID, s.ClaimID, json.RawMessage(`{"transaction_id":"txn-1","amount":42.5}`))
	require.NoError(t, err)
	require.NotEmpty(t, comp.Published)
	sent := rt.take()
	require.Len(t, sent, 2, "round trips: %q", sent)
	require.Contains(t, sent[0], "BEGIN")
	require.Contains(t, sent[0], "record_step_result")
	require.Contains(t, sent[1], "emit_events")
	require.Contains(t, sent[1], "COMMIT")
}
