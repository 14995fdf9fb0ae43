package security_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// padTo returns a JSON object {"transaction_id":"txn-pad","pad":"xxx…"} of
// exactly n bytes.
func padTo(t *testing.T, n int) string {
	t.Helper()
	const head, tail = `{"transaction_id":"txn-pad","pad":"`, `"}`
	doc := head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	require.Len(t, doc, n)
	return doc
}

// TestStepResultRefusesBadDocuments: results PostgreSQL's jsonb would refuse
// or that exceed events.MaxResultBytes are refused before they reach the
// database, with a message that says why; the step stays in progress,
// nothing is recorded or published (durable or fast), and the step can
// still complete. A JSON text that only looks like a NUL escape (an escaped
// backslash followed by "u0000") is a legitimate string and is stored.
func TestStepResultRefusesBadDocuments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := newClient(t, e.admin, events.Config{FastMode: events.FastInTransaction})
	_, capture := listen(t, e.admin, events.ListenerConfig{})
	_, steps := newTask(t, client, e.admin)
	startAndComplete(t, client, e.admin, steps[stepValidate], validateResult)
	_, err := events.StartStep(e.ctx, e.admin, steps[stepPayment])
	require.NoError(t, err)
	before := takeSnapshot(t, e.admin)

	for _, c := range []struct{ what, doc, want string }{
		{"\\u0000 in a string", `{"transaction_id":"a\u0000b"}`, `result contains \u0000, which PostgreSQL jsonb cannot store`},
		{"\\u0000 as the document", `"\u0000"`, `result contains \u0000`},
		{"\\u0000 in a key", `{"\u0000":1}`, `result contains \u0000`},
		{"\\u0000 after an escaped backslash", `{"a":"\\\u0000"}`, `result contains \u0000`},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "result is not valid UTF-8"},
		{"overlong UTF-8", "{\"a\":\"\xc0\xaf\"}", "result is not valid UTF-8"},
		{"UTF-8 encoded surrogate", "{\"a\":\"\xed\xa0\x80\"}", "result is not valid UTF-8"},
		{"truncated", `{"a":`, "result is not valid JSON"},
		{"trailing garbage", `{"a":1}}`, "result is not valid JSON"},
		{"NaN", `{"a":NaN}`, "result is not valid JSON"},
		{"single quotes", `{'a':1}`, "result is not valid JSON"},
		{"SQL", `'); DROP TABLE stepevents.tasks; --`, "result is not valid JSON"},
		{"one byte over 1 MB", padTo(t, events.MaxResultBytes+1), "result is 1048577 bytes, over the 1048576-byte limit"},
	} {
		_, err := client.CompleteStep(e.ctx, steps[stepPayment], json.RawMessage(c.doc))
		require.ErrorIs(t, err, events.ErrInvalidInput, c.what)
		require.ErrorContains(t, err, c.want, c.what)
		require.ErrorContains(t, err, "error completing step "+steps[stepPayment].String(), c.what)
		err = client.InTx(e.ctx, func(ctx context.Context, tx pgx.Tx) error {
			_, err := client.CompleteStepTx(ctx, tx, steps[stepPayment], json.RawMessage(c.doc))
			return err
		})
		require.ErrorIs(t, err, events.ErrInvalidInput, c.what)
	}
	for _, f := range []events.Failure{
		{Message: "card declined\x00", Code: "E1"},
		{Message: "x", Code: strings.Repeat("c", events.MaxResultBytes)},
	} {
		_, err := client.FailStep(e.ctx, steps[stepPayment], f)
		require.ErrorIs(t, err, events.ErrInvalidInput)
		require.ErrorContains(t, err, "error failing step")
	}
	requireUnchanged(t, e.admin, before, "refused results")
	notified(t, client)
	barrier(t, e.admin, capture, nil)
	require.Zero(t, countNamed(capture.Events(), "payment.processed"), "a refused result published a fast event")

	// Escaped backslash + "u0000": six ordinary characters, not a NUL.
	comp, err := client.CompleteStep(e.ctx, steps[stepPayment], json.RawMessage(`{"transaction_id":"txn-1","note":"\\u0000"}`))
	require.NoError(t, err, "an escaped backslash followed by u0000 is a legitimate string")
	require.Equal(t, "complete", comp.Step.State)
	var note string
	require.NoError(t, e.admin.QueryRow(e.ctx, `SELECT results->>'note' FROM stepevents.workflow_steps WHERE step_uuid = $1`,
		steps[stepPayment]).Scan(&note))
	require.Equal(t, `\u0000`, note)
	require.Equal(t, []string{"payment.processed"}, e.queueNames(t, "q_"+queue))
}

// TestStepResultAtTheSizeLimit: a result of exactly MaxResultBytes is
// accepted, recorded and published.
func TestStepResultAtTheSizeLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := newClient(t, e.admin, events.Config{})
	_, steps := newTask(t, client, e.admin)
	startAndComplete(t, client, e.admin, steps[stepValidate], validateResult)
	comp := startAndComplete(t, client, e.admin, steps[stepPayment], padTo(t, events.MaxResultBytes))
	require.Equal(t, "complete", comp.Step.State)
	require.Equal(t, []string{"payment.processed"}, e.queueNames(t, "q_"+queue))
}

// TestUnknownUUIDs: every step and task operation given an unknown uuid (or
// the nil uuid) fails with ErrNotFound naming it, and changes nothing.
func TestUnknownUUIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := newClient(t, e.admin, events.Config{})
	_, steps := newTask(t, client, e.admin)
	startAndComplete(t, client, e.admin, steps[stepValidate], validateResult)
	before := takeSnapshot(t, e.admin)
	ctx, pool := e.ctx, e.admin

	for _, id := range []uuid.UUID{uuid.New(), uuid.Nil} {
		calls := map[string]func() error{
			"CompleteStep": func() error { _, err := client.CompleteStep(ctx, id, json.RawMessage(`{}`)); return err },
			"FailStep":     func() error { _, err := client.FailStep(ctx, id, events.Failure{Message: "x"}); return err },
			"CompleteStepTx": func() error {
				return client.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
					_, err := client.CompleteStepTx(ctx, tx, id, json.RawMessage(`{}`))
					return err
				})
			},
			"StartStep":   func() error { _, err := events.StartStep(ctx, pool, id); return err },
			"ReleaseStep": func() error { _, err := events.ReleaseStep(ctx, pool, id, "x"); return err },
			"ResolveStep": func() error { _, err := events.ResolveStep(ctx, pool, id, "x"); return err },
			"ResetStep":   func() error { _, err := events.ResetStep(ctx, pool, id, "x"); return err },
			"CancelStep":  func() error { _, err := events.CancelStep(ctx, pool, id, "x"); return err },
			"GetStep":     func() error { _, err := events.GetStep(ctx, pool, id); return err },
			"GetTask":     func() error { _, err := events.GetTask(ctx, pool, id); return err },
			"TaskSteps":   func() error { _, err := events.TaskSteps(ctx, pool, id); return err },
		}
		for name, call := range calls {
			err := call()
			require.ErrorIs(t, err, events.ErrNotFound, "%s(%s)", name, id)
			require.ErrorContains(t, err, id.String(), "%s names the uuid", name)
		}
		_, err := events.Readiness(ctx, pool, id)
		require.ErrorIs(t, err, events.ErrNotFound, "readiness of an unknown task")
		require.ErrorContains(t, err, id.String())
	}
	requireUnchanged(t, e.admin, before, "operations on unknown uuids")
}

// TestCompletingStepsNotInProgress: completing or failing a step that is
// pending, waiting for retry, complete, in error, cancelled or resolved
// fails with ErrIllegalTransition naming the state, and records and
// publishes nothing.
func TestCompletingStepsNotInProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := newClient(t, e.admin, events.Config{FastMode: events.FastInTransaction})
	_, capture := listen(t, e.admin, events.ListenerConfig{})
	ctx := e.ctx
	byState := map[string]uuid.UUID{}

	_, a := newTask(t, client, e.admin)
	startAndComplete(t, client, e.admin, a[stepValidate], validateResult)
	byState["complete"] = a[stepValidate]
	_, err := events.StartStep(ctx, e.admin, a[stepPayment])
	require.NoError(t, err)
	_, err = client.FailStep(ctx, a[stepPayment], events.Failure{Message: "stolen card", Code: "E2", Permanent: true})
	require.NoError(t, err)
	byState["error"] = a[stepPayment]
	byState["pending"] = a[stepInventory]
	_, err = events.CancelStep(ctx, e.admin, a["domain_events_send_notification"], "not needed")
	require.NoError(t, err)
	byState["cancelled"] = a["domain_events_send_notification"]

	_, b := newTask(t, client, e.admin)
	startAndComplete(t, client, e.admin, b[stepValidate], validateResult)
	_, err = events.StartStep(ctx, e.admin, b[stepPayment])
	require.NoError(t, err)
	_, err = client.FailStep(ctx, b[stepPayment], events.Failure{Message: "timeout", Code: "E3"})
	require.NoError(t, err)
	byState["waiting_for_retry"] = b[stepPayment]
	_, err = events.ResolveStep(ctx, e.admin, b[stepInventory], "done by hand")
	require.NoError(t, err)
	byState["resolved_manually"] = b[stepInventory]

	notified(t, client)
	barrier(t, e.admin, capture, nil)
	fastBefore := capture.Count()
	before := takeSnapshot(t, e.admin)
	for state, id := range byState {
		s, err := events.GetStep(ctx, e.admin, id)
		require.NoError(t, err)
		require.Equal(t, state, s.State)
		_, err = client.CompleteStep(ctx, id, json.RawMessage(paymentResult))
		require.ErrorIs(t, err, events.ErrIllegalTransition, "complete a %s step", state)
		require.ErrorContains(t, err, "illegal step transition "+state+" -> complete")
		_, err = client.FailStep(ctx, id, events.Failure{Message: "again"})
		require.ErrorIs(t, err, events.ErrIllegalTransition, "fail a %s step", state)
	}
	requireUnchanged(t, e.admin, before, "completing steps not in progress")
	notified(t, client)
	barrier(t, e.admin, capture, nil)
	require.Equal(t, fastBefore+1, capture.Count(), "only the barrier arrived")
}

// TestDoubleCompletion: the second completion of a step fails with
// ErrIllegalTransition; there is one complete transition and one set of
// events, durable and fast.
func TestDoubleCompletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := newClient(t, e.admin, events.Config{})
	_, capture := listen(t, e.admin, events.ListenerConfig{})
	_, steps := newTask(t, client, e.admin)
	startAndComplete(t, client, e.admin, steps[stepValidate], validateResult)
	comp := startAndComplete(t, client, e.admin, steps[stepPayment], paymentResult)
	before := takeSnapshot(t, e.admin)

	_, err := client.CompleteStep(e.ctx, steps[stepPayment], json.RawMessage(`{"transaction_id":"txn-2"}`))
	require.ErrorIs(t, err, events.ErrIllegalTransition)
	_, err = client.FailStep(e.ctx, steps[stepPayment], events.Failure{Message: "late failure"})
	require.ErrorIs(t, err, events.ErrIllegalTransition)
	requireUnchanged(t, e.admin, before, "a second completion")

	notified(t, client)
	barrier(t, e.admin, capture, nil)
	evs := capture.Events()
	require.Equal(t, 1, countNamed(evs, "payment.processed"))
	require.Equal(t, []string{"payment.processed"}, e.queueNames(t, "q_"+queue))
	requireOneCompletion(t, e, steps[stepPayment])
	for _, ev := range evs {
		if ev.EventName == "payment.processed" {
			require.Equal(t, comp.Published[0].EventID, ev.EventID)
		}
	}
}

// requireOneCompletion asserts the step's history holds exactly one
// transition to complete and one most_recent row.
func requireOneCompletion(t *testing.T, e *env, step uuid.UUID) {
	t.Helper()
	var completes, recent int
	require.NoError(t, e.admin.QueryRow(e.ctx, `SELECT count(*) FILTER (WHERE to_state = 'complete'),
		count(*) FILTER (WHERE most_recent) FROM stepevents.workflow_step_transitions WHERE step_uuid = $1`,
		step).Scan(&completes, &recent))
	require.Equal(t, 1, completes, "complete transitions of %s", step)
	require.Equal(t, 1, recent, "most_recent rows of %s", step)
}
