package runner_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/runner"
)

// gatedWorker is a runner whose validate handler reports each step it is
// given on claimed, then holds it until gate is closed and returns a result
// marked with the worker's name.
type gatedWorker struct {
	name    string
	claimed chan events.Step
	gate    chan struct{}
	open    func() // closes gate, once
	s       *started
}

func (b *bundle) startGatedWorker(t *testing.T, name string) *gatedWorker {
	t.Helper()
	w := &gatedWorker{name: name, claimed: make(chan events.Step, 4), gate: make(chan struct{})}
	w.open = sync.OnceFunc(func() { close(w.gate) })
	h := func(ctx context.Context, s events.Step, task events.Task) (json.RawMessage, error) {
		w.claimed <- s
		<-w.gate // hung: deaf to ctx, like a worker stuck in a call
		var in struct {
			OrderID string `json:"order_id"`
		}
		_ = json.Unmarshal(task.Context, &in)
		return json.Marshal(map[string]any{"order_id": in.OrderID, "worker": w.name,
			"validation_timestamp": time.Now().UTC().Format(time.RFC3339)})
	}
	w.s = b.start(t, runner.Config{Workers: 1, PollInterval: 5 * time.Millisecond, RecoverInterval: -1,
		StepTimeout: time.Minute, Handlers: map[string]runner.HandlerFunc{fixtureSteps[validateStep]: h}})
	t.Cleanup(w.open) // runs before start's cleanup, which waits for the handler
	return w
}

func (w *gatedWorker) waitClaim(t *testing.T) events.Step {
	t.Helper()
	select {
	case s := <-w.claimed:
		return s
	case <-time.After(30 * time.Second):
		t.Fatalf("worker %s claimed nothing within 30s", w.name)
		return events.Step{}
	}
}

// TestLateOutcomeOfReusedAttemptNumberIsSuperseded: release_step refunds an
// attempt and reset_step zeroes the count, so the next claim of the step
// gets the same attempt number as the hung one before it. The hung worker's
// late outcome must still be refused (superseded) and leave the step as the
// new claim has it; the new claim's outcome is the one recorded.
func TestLateOutcomeOfReusedAttemptNumberIsSuperseded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// takeAway ends worker A's attempt without A, leaving the step
		// pending with A's attempt number free again.
		takeAway func(t *testing.T, b *bundle, step uuid.UUID)
	}{
		{"Release", func(t *testing.T, b *bundle, step uuid.UUID) {
			_, err := events.ReleaseStep(context.Background(), b.pool, step, "test: worker presumed hung")
			require.NoError(t, err)
		}},
		{"FailThenReset", func(t *testing.T, b *bundle, step uuid.UUID) {
			ctx := context.Background()
			_, err := b.client.FailStep(ctx, step, events.Failure{Message: "operator: worker hung", Permanent: true})
			require.NoError(t, err)
			_, err = events.ResetStep(ctx, b.pool, step, "test: try again")
			require.NoError(t, err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 2)
			ctx := context.Background()
			tasks := b.createOrders(t, []order{{}})
			step := b.stepOf(t, tasks[0], validateStep)

			a := b.startGatedWorker(t, "A")
			claimA := a.waitClaim(t)
			require.Equal(t, step, claimA.StepUUID)

			tc.takeAway(t, b, step)

			bw := b.startGatedWorker(t, "B")
			claimB := bw.waitClaim(t)
			require.Equal(t, step, claimB.StepUUID)
			require.Equal(t, claimA.Attempts, claimB.Attempts, "the attempt number is reused")

			// A's late outcome: refused, and the step is still B's attempt.
			a.open()
			waitFor(t, 30*time.Second, "worker A's outcome to be handled", func() bool {
				st := a.s.r.Stats()
				return st.Superseded+st.Completed+st.Failed+st.RecordErrors > 0
			})
			stA := a.s.r.Stats()
			require.Equal(t, uint64(1), stA.Superseded, "A's late outcome is superseded: %+v", stA)
			require.Zero(t, stA.Completed+stA.Failed, "A's late outcome is not recorded: %+v", stA)
			var state string
			var attempts int
			var results []byte
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT state, attempts, results FROM stepevents.workflow_steps
				WHERE step_uuid = $1`, step).Scan(&state, &attempts, &results))
			require.Equal(t, "in_progress", state, "B's attempt is still running")
			require.Equal(t, claimB.Attempts, attempts)
			require.Nil(t, results)

			// B's outcome is recorded.
			bw.open()
			waitFor(t, 30*time.Second, "worker B's outcome to be recorded", func() bool {
				return bw.s.r.Stats().Completed == 1
			})
			stB := bw.s.r.Stats()
			require.Zero(t, stB.Superseded+stB.RecordErrors, "%+v", stB)
			var worker string
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT state, attempts, results->>'worker' FROM stepevents.workflow_steps
				WHERE step_uuid = $1`, step).Scan(&state, &attempts, &worker))
			require.Equal(t, []any{"complete", claimB.Attempts, "B"}, []any{state, attempts, worker})
			require.Equal(t, 1, b.count(t, `SELECT count(*) FROM stepevents.workflow_step_transitions
				WHERE step_uuid = $1 AND to_state = 'complete'`, step), "one completion, B's")
			require.NoError(t, a.s.stop(t))
			require.NoError(t, bw.s.stop(t))
		})
	}
}
