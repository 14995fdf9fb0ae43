package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/runner"
)

// mixedOrders returns n orders: most succeed at once, some fail retryably
// once or twice before succeeding, a few fail permanently.
func mixedOrders(n int) []order {
	out := make([]order, n)
	for i := range out {
		switch {
		case i%10 == 3:
			out[i] = order{Fail: paymentStep} // permanent: payment.failed.permanent
		case i%10 == 7:
			out[i] = order{Fail: inventoryStep} // permanent: inventory.updated (always)
		case i%5 == 1:
			out[i] = order{Fail: paymentStep, Times: 1}
		case i%7 == 2:
			out[i] = order{Fail: inventoryStep, Times: 2}
		case i%11 == 5:
			out[i] = order{Fail: validateStep, Times: 1}
		}
	}
	return out
}

// TestRunnerFourWorkersRunEachAttemptOnce runs 75 orders × 4 steps (300
// steps, more attempts with the retries) on 4 workers and checks every
// attempt against the transition history.
func TestRunnerFourWorkersRunEachAttemptOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, 4)
	b.createOrders(t, mixedOrders(75))
	require.Equal(t, 300, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps`))

	s := b.start(t, runner.Config{Workers: 4, PollInterval: 10 * time.Millisecond, Handlers: b.orderHandlers(0)})
	waitFor(t, 60*time.Second, "every task to finish", func() bool { return b.unfinishedTasks(t) == 0 })
	require.NoError(t, s.stop(t))

	b.requireEachAttemptOnce(t)
	st := s.r.Stats()
	require.Equal(t, uint64(len(b.startedAttempts(t))), st.Claimed)
	require.Equal(t, st.Claimed, st.Completed+st.Failed)
	require.Zero(t, st.Released+st.Superseded+st.RecordErrors+st.ClaimErrors+st.Panics)
	require.Zero(t, st.InFlight)
	// 75 orders: 15 end in error (i%10 == 3 or 7), the rest complete.
	require.Equal(t, 60, b.count(t, `SELECT count(*) FROM stepevents.tasks WHERE state = 'complete'`))
	require.Equal(t, 15, b.count(t, `SELECT count(*) FROM stepevents.tasks WHERE state = 'error'`))
}

// TestRunnerEightWorkersThousandSteps runs 250 orders × 4 steps on 8
// workers: each attempt runs once, and every durable event is accounted
// for three ways: the completions the runner reported, the rows in the
// pgmq queue (plain SQL, no duplicate event ids), and what the transition
// history says the fixture's declarations must have produced.
func TestRunnerEightWorkersThousandSteps(t *testing.T) {
	t.Parallel()
	b := setup(t, 8)
	b.createOrders(t, mixedOrders(250))
	require.Equal(t, 1000, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps`))

	var comps completions
	s := b.start(t, runner.Config{Workers: 8, PollInterval: 10 * time.Millisecond, Handlers: b.orderHandlers(0),
		OnRecorded: comps.add})
	waitFor(t, 120*time.Second, "every task to finish", func() bool { return b.unfinishedTasks(t) == 0 })
	require.NoError(t, s.stop(t))
	b.requireEachAttemptOnce(t)

	// What the runner's completions published durably (durable + broadcast).
	reported := map[string]string{} // event_id -> name
	for _, c := range comps.all() {
		require.Empty(t, c.Errors, "routing errors")
		for _, p := range c.Published {
			if p.Queue != "" {
				_, dup := reported[p.EventID.String()]
				require.False(t, dup, "event %s reported twice", p.EventID)
				reported[p.EventID.String()] = p.Name
			}
		}
	}
	require.Len(t, comps.all(), int(s.r.Stats().Claimed), "one completion per attempt")

	// What the queue holds, read with plain SQL.
	rows, err := b.pool.Query(context.Background(), `SELECT message->>'event_id', message->>'event_name' FROM `+queue)
	require.NoError(t, err)
	queued := map[string]string{}
	for rows.Next() {
		var id, name string
		require.NoError(t, rows.Scan(&id, &name))
		_, dup := queued[id]
		require.False(t, dup, "event %s queued twice", id)
		queued[id] = name
	}
	require.NoError(t, rows.Err())
	require.Equal(t, reported, queued, "the queue holds exactly the durable events the completions published")

	// What the fixture's declarations say the history must have produced.
	expected := b.count(t, `
		SELECT count(*) FROM stepevents.workflow_step_transitions tr
		JOIN stepevents.workflow_steps s USING (step_uuid)
		WHERE tr.from_state = 'in_progress' AND (
		    (s.name = $1 AND tr.to_state IN ('complete', 'error'))                         -- payment.processed / .failed.permanent
		 OR (s.name = $2 AND tr.to_state IN ('complete', 'waiting_for_retry', 'error'))    -- inventory.updated (always)
		 OR (s.name = $3 AND tr.to_state = 'complete'))                                    -- notification.sent`,
		paymentStep, inventoryStep, notificationStep)
	require.Equal(t, expected, len(queued))
	stats := b.client.Stats()
	require.Zero(t, stats.RoutingErrors)
	require.Zero(t, stats.Skipped[events.SkipInvalidPayload])
}
