package runner_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/runner"
)

// blockingHandlers block every step until release is closed (then succeed)
// or their ctx ends (then return its error).
func (b *bundle) blockingHandlers(release <-chan struct{}) map[string]runner.HandlerFunc {
	h := func(ctx context.Context, s events.Step, task events.Task) (json.RawMessage, error) {
		b.calls.add(s)
		select {
		case <-release:
			var in struct {
				OrderID string `json:"order_id"`
			}
			_ = json.Unmarshal(task.Context, &in)
			return resultFor(s.Name, in.OrderID), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := map[string]runner.HandlerFunc{}
	for _, name := range fixtureSteps {
		out[name] = h
	}
	return out
}

// TestRunnerStopLetsInFlightHandlersFinish: handlers that finish within
// the grace period have their outcome recorded; nothing new is claimed
// once Run's ctx is cancelled.
func TestRunnerStopLetsInFlightHandlersFinish(t *testing.T) {
	t.Parallel()
	b := setup(t, 4)
	b.createOrders(t, make([]order, 8))
	release := make(chan struct{})
	s := b.start(t, runner.Config{Workers: 4, PollInterval: 10 * time.Millisecond, ShutdownGrace: time.Minute,
		Handlers: b.blockingHandlers(release)})
	waitFor(t, 30*time.Second, "4 handlers in flight", func() bool { return s.r.Stats().InFlight == 4 })

	s.cancel()
	close(release)
	require.NoError(t, s.stop(t))

	st := s.r.Stats()
	require.Equal(t, uint64(4), st.Claimed, "nothing claimed after cancellation: %+v", st)
	require.Equal(t, uint64(4), st.Completed, "%+v", st)
	require.Zero(t, st.Released, "%+v", st)
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps WHERE state = 'complete'`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps WHERE state = 'in_progress'`))
}

// TestRunnerStopReleasesHandlersPastGrace: handlers still running when the
// grace period ends lose their step (released: pending, attempt refunded,
// recorded in the history) and their late outcome is discarded; another
// runner then finishes the work.
func TestRunnerStopReleasesHandlersPastGrace(t *testing.T) {
	t.Parallel()
	b := setup(t, 4)
	tasks := b.createOrders(t, make([]order, 8))
	never := make(chan struct{})
	s := b.start(t, runner.Config{Workers: 4, PollInterval: 10 * time.Millisecond,
		ShutdownGrace: 20 * time.Millisecond, Handlers: b.blockingHandlers(never)})
	waitFor(t, 30*time.Second, "4 handlers in flight", func() bool { return s.r.Stats().InFlight == 4 })
	require.NoError(t, s.stop(t))

	st := s.r.Stats()
	require.Equal(t, uint64(4), st.Claimed)
	require.Equal(t, uint64(4), st.Released)
	require.Zero(t, st.Completed+st.Failed, "a released attempt's outcome is discarded")
	require.Zero(t, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps WHERE state = 'in_progress'`))
	require.Equal(t, 4, b.count(t, `
		SELECT count(*) FROM stepevents.workflow_step_transitions
		WHERE from_state = 'in_progress' AND to_state = 'pending'
		  AND metadata->>'reason' LIKE 'runner stopped:%'`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps WHERE attempts > 0`),
		"released attempts are refunded")

	// The way forward: a new runner runs every step to completion.
	s2 := b.start(t, runner.Config{Workers: 4, PollInterval: 10 * time.Millisecond, Handlers: b.orderHandlers(0)})
	waitFor(t, 60*time.Second, "every task to finish", func() bool { return b.unfinishedTasks(t) == 0 })
	require.NoError(t, s2.stop(t))
	require.Equal(t, len(tasks), b.count(t, `SELECT count(*) FROM stepevents.tasks WHERE state = 'complete'`))
}

// TestRunnerCancelMidRun cancels a busy runner at an arbitrary point, with
// a grace period shorter than some handlers: every step is then recorded or
// released, none is left in_progress, and a second runner finishes all the
// tasks, each attempt recorded once.
func TestRunnerCancelMidRun(t *testing.T) {
	t.Parallel()
	b := setup(t, 4)
	b.createOrders(t, mixedOrders(40))
	s := b.start(t, runner.Config{Workers: 4, PollInterval: 10 * time.Millisecond,
		ShutdownGrace: 5 * time.Millisecond, Handlers: b.orderHandlers(3 * time.Millisecond)})
	waitFor(t, 30*time.Second, "50 claims", func() bool { return s.r.Stats().Claimed >= 50 })
	require.NoError(t, s.stop(t))

	st := s.r.Stats()
	require.Equal(t, st.Claimed, st.Completed+st.Failed+st.Released, "every claim recorded or released")
	require.Zero(t, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps WHERE state = 'in_progress'`))
	require.Positive(t, b.unfinishedTasks(t))

	s2 := b.start(t, runner.Config{Workers: 4, PollInterval: 10 * time.Millisecond, Handlers: b.orderHandlers(0)})
	waitFor(t, 60*time.Second, "every task to finish", func() bool { return b.unfinishedTasks(t) == 0 })
	require.NoError(t, s2.stop(t))
	require.Equal(t, 32, b.count(t, `SELECT count(*) FROM stepevents.tasks WHERE state = 'complete'`))
	require.Equal(t, 8, b.count(t, `SELECT count(*) FROM stepevents.tasks WHERE state = 'error'`))
	// Every attempt the database counts was recorded exactly once
	// (released attempts are refunded and run again under the same number).
	require.Equal(t, b.count(t, `SELECT coalesce(sum(attempts), 0) FROM stepevents.workflow_steps`),
		b.count(t, `SELECT count(*) FROM stepevents.workflow_step_transitions
			WHERE from_state = 'in_progress' AND to_state IN ('complete', 'waiting_for_retry', 'error')`))
}
