package fault_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// TestInvariantsDetectCorruption proves the invariants of invariants.sql
// can fail: a history with retries, a permanent failure, a reset and a
// release passes them all, and each corruption below — applied in a
// transaction that is rolled back — makes its invariant report it.
func TestInvariantsDetectCorruption(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	client := f.newClient(t, f.pool, events.FastAfterCommit)
	healthyHistory(t, f, client)
	requireInvariants(t, f.ctx, f.pool)

	const (
		q      = queueTable
		oneMsg = `(SELECT min(msg_id) FROM ` + q + `)`
		// a step that went through retries, an error, a reset and a release
		busy = `(SELECT step_uuid FROM stepevents.workflow_step_transitions GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)`
	)
	for _, c := range []struct{ invariant, corruption string }{
		{"committed completions have exactly their declared durable events",
			`DELETE FROM ` + q + ` WHERE msg_id = ` + oneMsg},
		{"no duplicate event ids in the queue",
			`SELECT pgmq.send_batch('domain_events_domain_events', ARRAY[m.message], ARRAY[m.headers])
			 FROM ` + q + ` m WHERE m.msg_id = ` + oneMsg},
		{"no orphan messages",
			`SELECT pgmq.send_batch('domain_events_domain_events',
			     ARRAY[jsonb_set(m.message, '{metadata,step_uuid}', to_jsonb(gen_random_uuid()::text))], ARRAY[m.headers])
			 FROM ` + q + ` m WHERE m.msg_id = ` + oneMsg},
		{"messages agree with themselves",
			`UPDATE ` + q + ` SET headers = jsonb_set(headers, '{event_name}', '"forged.name"') WHERE msg_id = ` + oneMsg},
		{"exactly one most_recent transition per step",
			`UPDATE stepevents.workflow_step_transitions SET most_recent = false WHERE step_uuid = ` + busy + ` AND most_recent`},
		{"sort keys run 1..n and the most recent is the last",
			`UPDATE stepevents.workflow_step_transitions SET sort_key = sort_key + 100
			 WHERE step_uuid = ` + busy + ` AND most_recent`},
		{"each transition starts where the previous one ended, and is allowed",
			`UPDATE stepevents.workflow_step_transitions SET from_state = 'complete'
			 WHERE step_uuid = ` + busy + ` AND sort_key = 2`},
		{"a step's state is its most recent transition's",
			`UPDATE stepevents.workflow_steps SET state = 'cancelled' WHERE step_uuid = ` + busy},
		{"attempts follow the history",
			`UPDATE stepevents.workflow_steps SET attempts = attempts + 1 WHERE step_uuid = ` + busy},
		{"the state machine decided every failure",
			`UPDATE stepevents.workflow_step_transitions SET metadata = metadata || '{"permanent": true}'
			 WHERE step_uuid = ` + busy + ` AND to_state = 'waiting_for_retry'`},
		{"a task's state follows from its steps' states",
			`UPDATE stepevents.tasks SET state = 'cancelled'`},
		{"a step counts its parents that are not done",
			`UPDATE stepevents.workflow_steps SET unmet_parents = unmet_parents + 1 WHERE step_uuid = ` + busy},
	} {
		inv := invariantNamed(t, c.invariant)
		tx, err := f.pool.Begin(f.ctx)
		require.NoError(t, err)
		_, err = tx.Exec(f.ctx, c.corruption)
		require.NoError(t, err, "corrupting for %q", c.invariant)
		require.NotEmpty(t, queryViolations(t, f.ctx, tx, inv.sql), "invariant %q missed its corruption", c.invariant)
		require.NoError(t, tx.Rollback(f.ctx))
	}
	requireInvariants(t, f.ctx, f.pool)
}

// healthyHistory runs two orders: one straight through, one through a
// retryable failure, a permanent failure, a reset, a release and a final
// permanent failure of its third step.
func healthyHistory(t *testing.T, f *fixture, client *events.Client) {
	t.Helper()
	a, err := newOrder(f.ctx, f.pool)
	require.NoError(t, err)
	for _, name := range stepOrder {
		start(t, f, a.steps[name])
		_, err := client.CompleteStep(f.ctx, a.steps[name], resultFor(name, a.id))
		require.NoError(t, err)
	}

	b, err := newOrder(f.ctx, f.pool)
	require.NoError(t, err)
	start(t, f, b.steps[stepValidate])
	_, err = client.CompleteStep(f.ctx, b.steps[stepValidate], resultFor(stepValidate, b.id))
	require.NoError(t, err)
	pay := b.steps[stepPayment]
	start(t, f, pay)
	comp, err := client.FailStep(f.ctx, pay, events.Failure{Message: "timeout", Code: "E_TIMEOUT", RetryAfter: time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, "waiting_for_retry", comp.Step.State)
	start(t, f, pay)
	comp, err = client.FailStep(f.ctx, pay, events.Failure{Message: "declined", Code: "E_DECLINED", Permanent: true})
	require.NoError(t, err)
	require.Equal(t, "error", comp.Step.State)
	_, err = events.ResetStep(f.ctx, f.pool, pay, "operator retry")
	require.NoError(t, err)
	start(t, f, pay)
	_, err = events.ReleaseStep(f.ctx, f.pool, pay, "worker lost")
	require.NoError(t, err)
	start(t, f, pay)
	_, err = client.CompleteStep(f.ctx, pay, resultFor(stepPayment, b.id))
	require.NoError(t, err)
	start(t, f, b.steps[stepInventory])
	_, err = client.FailStep(f.ctx, b.steps[stepInventory], events.Failure{Message: "no stock", Code: "E_STOCK", Permanent: true})
	require.NoError(t, err)
}

// start claims a step, waiting out a retry backoff (a millisecond here).
func start(t *testing.T, f *fixture, step uuid.UUID) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		_, err := events.StartStep(f.ctx, f.pool, step)
		if err == nil {
			return
		}
		require.ErrorIs(t, err, events.ErrStepNotReady)
		require.True(t, time.Now().Before(deadline), "step %s still not ready: %v", step, err)
	}
}

// invariantNamed returns the invariant of invariants.sql with that name.
func invariantNamed(t *testing.T, name string) invariant {
	t.Helper()
	for _, inv := range invariants(t) {
		if inv.name == name {
			return inv
		}
	}
	t.Fatalf("invariants.sql has no invariant %q", name)
	return invariant{}
}
