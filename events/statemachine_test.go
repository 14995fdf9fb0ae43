package events_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

var states = []string{"pending", "in_progress", "waiting_for_retry", "complete", "error", "cancelled", "resolved_manually"}

// The whole transition table, as SQL enforces it.
func TestTransitionTable(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	legal := map[string][]string{
		"pending":           {"in_progress", "cancelled", "resolved_manually"},
		"waiting_for_retry": {"in_progress", "cancelled", "resolved_manually"},
		"in_progress":       {"complete", "waiting_for_retry", "error", "pending", "cancelled", "resolved_manually"},
		"error":             {"pending", "cancelled", "resolved_manually"},
	}
	for _, from := range states {
		for _, to := range states {
			var got bool
			require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT stepevents.step_transition_allowed($1, $2)`, from, to).Scan(&got))
			want := false
			for _, l := range legal[from] {
				want = want || l == to
			}
			require.Equal(t, want, got, "%s -> %s", from, to)
		}
	}
}

// Every operation from every state it may meet: legal ones move the step,
// illegal ones fail with ErrIllegalTransition or ErrStepNotReady and change
// nothing.
func TestStepOperations(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ops := map[string]func(uuid.UUID) (events.Step, error){
		"start": func(id uuid.UUID) (events.Step, error) { return events.StartStep(b.ctx, b.pool, id) },
		"complete": func(id uuid.UUID) (events.Step, error) {
			c, err := b.client.CompleteStep(b.ctx, id, json.RawMessage(validResult))
			if err != nil {
				return events.Step{}, err
			}
			return c.Step, nil
		},
		"fail": func(id uuid.UUID) (events.Step, error) {
			c, err := b.client.FailStep(b.ctx, id, events.Failure{Message: "x", Code: "X"})
			if err != nil {
				return events.Step{}, err
			}
			return c.Step, nil
		},
		"fail_permanent": func(id uuid.UUID) (events.Step, error) {
			c, err := b.client.FailStep(b.ctx, id, events.Failure{Message: "x", Code: "X", Permanent: true})
			if err != nil {
				return events.Step{}, err
			}
			return c.Step, nil
		},
		"release": func(id uuid.UUID) (events.Step, error) { return events.ReleaseStep(b.ctx, b.pool, id, "test") },
		"resolve": func(id uuid.UUID) (events.Step, error) { return events.ResolveStep(b.ctx, b.pool, id, "ok") },
		"reset":   func(id uuid.UUID) (events.Step, error) { return events.ResetStep(b.ctx, b.pool, id, "again") },
		"cancel":  func(id uuid.UUID) (events.Step, error) { return events.CancelStep(b.ctx, b.pool, id, "stop") },
	}
	// Ways to bring a fresh validate step into each state.
	reach := map[string][]string{
		"pending":           {},
		"in_progress":       {"start"},
		"waiting_for_retry": {"start", "fail"},
		"complete":          {"start", "complete"},
		"error":             {"start", "fail_permanent"},
		"cancelled":         {"cancel"},
		"resolved_manually": {"resolve"},
	}
	want := map[string]map[string]string{ // from -> op -> resulting state ("" = refused)
		"pending":           {"start": "in_progress", "resolve": "resolved_manually", "cancel": "cancelled"},
		"in_progress":       {"complete": "complete", "fail": "waiting_for_retry", "fail_permanent": "error", "release": "pending", "resolve": "resolved_manually", "cancel": "cancelled"},
		"waiting_for_retry": {"resolve": "resolved_manually", "cancel": "cancelled"}, // start refused: backoff not elapsed
		"complete":          {},
		"error":             {"reset": "pending", "resolve": "resolved_manually", "cancel": "cancelled"},
		"cancelled":         {},
		"resolved_manually": {},
	}
	for from, path := range reach {
		for op, fn := range ops {
			_, steps := b.newTask(t)
			id := steps[stepValidate]
			for _, p := range path {
				_, err := ops[p](id)
				require.NoError(t, err, "reaching %s by %s", from, p)
			}
			before, err := events.Transitions(b.ctx, b.pool, id)
			require.NoError(t, err)
			st, err := fn(id)
			if to := want[from][op]; to != "" {
				require.NoError(t, err, "%s from %s", op, from)
				require.Equal(t, to, st.State, "%s from %s", op, from)
				continue
			}
			require.Error(t, err, "%s from %s must be refused", op, from)
			if op == "start" {
				require.ErrorIs(t, err, events.ErrStepNotReady, "%s from %s", op, from)
			} else {
				require.ErrorIs(t, err, events.ErrIllegalTransition, "%s from %s", op, from)
				require.ErrorContains(t, err, from+" -> ")
			}
			after, err := events.Transitions(b.ctx, b.pool, id)
			require.NoError(t, err)
			require.Equal(t, before, after, "%s from %s changed nothing", op, from)
		}
	}
}

func TestTransitionHistoryHasOneMostRecent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, steps := b.newTask(t)
	id := steps[stepValidate]
	b.start(t, id)
	_, err := b.client.FailStep(b.ctx, id, events.Failure{Message: "x", Code: "X", Permanent: true})
	require.NoError(t, err)
	_, err = events.ResetStep(b.ctx, b.pool, id, "operator")
	require.NoError(t, err)
	tr, err := events.Transitions(b.ctx, b.pool, id)
	require.NoError(t, err)
	var got []string
	most := 0
	for _, x := range tr {
		got = append(got, x.FromState+">"+x.ToState)
		if x.MostRecent {
			most++
		}
	}
	require.Equal(t, []string{">pending", "pending>in_progress", "in_progress>error", "error>pending"}, got)
	require.Equal(t, 1, most)
	require.JSONEq(t, `{"operator_action":"reset","note":"operator","previous_attempts":1}`, string(tr[3].Metadata))
	st, err := events.GetStep(b.ctx, b.pool, id)
	require.NoError(t, err)
	require.Equal(t, 0, st.Attempts, "reset gives fresh attempts")
}

func TestUnknownStep(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, err := events.StartStep(b.ctx, b.pool, uuid.New())
	require.ErrorIs(t, err, events.ErrNotFound)
	_, err = b.client.CompleteStep(b.ctx, uuid.New(), json.RawMessage(`{}`))
	require.ErrorIs(t, err, events.ErrNotFound)
	_, err = events.TaskSteps(b.ctx, b.pool, uuid.New())
	require.ErrorIs(t, err, events.ErrNotFound)
}

func TestTaskStateFollowsSteps(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	state := func(id uuid.UUID) string {
		task, err := events.GetTask(b.ctx, b.pool, id)
		require.NoError(t, err)
		return task.State
	}
	task, steps := b.newTask(t)
	require.Equal(t, "pending", state(task))
	b.start(t, steps[stepValidate])
	require.Equal(t, "in_progress", state(task))
	_, err := b.client.CompleteStep(b.ctx, steps[stepValidate], json.RawMessage(validResult))
	require.NoError(t, err)
	b.start(t, steps[stepPayment])
	_, err = b.client.FailStep(b.ctx, steps[stepPayment], events.Failure{Message: "x", Code: "X", Permanent: true})
	require.NoError(t, err)
	require.Equal(t, "error", state(task))
	_, err = events.ResolveStep(b.ctx, b.pool, steps[stepPayment], "paid by phone")
	require.NoError(t, err)
	require.Equal(t, "in_progress", state(task))
	for _, s := range []string{stepInventory, stepNotify} {
		b.complete(t, steps[s], `{"order_id":"o","channel":"email"}`)
	}
	require.Equal(t, "complete", state(task), "complete when every step is complete or resolved")

	task2, steps2 := b.newTask(t)
	for _, s := range []string{stepValidate, stepPayment, stepInventory, stepNotify} {
		_, err := events.CancelStep(b.ctx, b.pool, steps2[s], "")
		require.NoError(t, err)
	}
	require.Equal(t, "cancelled", state(task2))
}

const backoffTemplate = `
name: backoff
namespace_name: backoff_ns
version: 1.0.0
steps:
  - name: parent
    handler: {callable: p}
  - name: none
    handler: {callable: h}
    retry: {backoff: none, max_attempts: 3}
  - name: linear
    handler: {callable: h}
    retry: {backoff: linear, backoff_base_ms: 2000, max_backoff_ms: 5000, max_attempts: 5}
  - name: exponential
    handler: {callable: h}
    retry: {backoff: exponential, backoff_base_ms: 1000, max_backoff_ms: 3000, max_attempts: 5}
  - name: once
    handler: {callable: h}
    retry: {retryable: false}
  - name: child
    handler: {callable: c}
    dependencies: [parent]
`

func readiness(t *testing.T, b *bundle, task uuid.UUID, step uuid.UUID) events.StepReadiness {
	t.Helper()
	r, err := events.Readiness(b.ctx, b.pool, task, step)
	require.NoError(t, err)
	require.Len(t, r, 1)
	return r[0]
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tpl, err := template.Load("backoff.yaml", []byte(backoffTemplate))
	require.NoError(t, err)
	require.NoError(t, events.ApplyTemplate(b.ctx, b.pool, tpl))
	task, err := b.client.CreateTask(b.ctx, events.CreateTaskParams{Namespace: "backoff_ns", Name: "backoff"})
	require.NoError(t, err)
	all, err := events.Readiness(b.ctx, b.pool, task)
	require.NoError(t, err)
	id := map[string]uuid.UUID{}
	for _, r := range all {
		id[r.Name] = r.StepUUID
	}
	fail := func(name string, f events.Failure) {
		t.Helper()
		b.start(t, id[name])
		_, err := b.client.FailStep(b.ctx, id[name], f)
		require.NoError(t, err)
	}
	elapse := func(name string) {
		t.Helper()
		_, err := b.pool.Exec(b.ctx, `UPDATE stepevents.workflow_steps SET last_failure_at = last_failure_at - interval '1 hour',
			next_retry_at = next_retry_at - interval '1 hour' WHERE step_uuid = $1`, id[name])
		require.NoError(t, err)
	}

	t.Run("no dependencies, first attempt", func(t *testing.T) {
		r := readiness(t, b, task, id["parent"])
		require.True(t, r.ReadyForExecution)
		require.True(t, r.DependenciesSatisfied)
		require.Equal(t, 0, r.TotalParents)
		require.Equal(t, 0, r.Attempts)
		require.True(t, r.RetryEligible)
	})
	t.Run("unmet then met dependencies", func(t *testing.T) {
		r := readiness(t, b, task, id["child"])
		require.False(t, r.ReadyForExecution)
		require.False(t, r.DependenciesSatisfied)
		require.Equal(t, [2]int{1, 0}, [2]int{r.TotalParents, r.CompletedParents})
		_, err := events.StartStep(b.ctx, b.pool, id["child"])
		require.ErrorIs(t, err, events.ErrStepNotReady)
		require.ErrorContains(t, err, "dependencies not satisfied (0 of 1 parents done)")
		b.start(t, id["parent"])
		_, err = b.client.CompleteStep(b.ctx, id["parent"], json.RawMessage(`{}`))
		require.NoError(t, err)
		r = readiness(t, b, task, id["child"])
		require.True(t, r.ReadyForExecution)
		require.Equal(t, [2]int{1, 1}, [2]int{r.TotalParents, r.CompletedParents})
	})
	t.Run("backoff none", func(t *testing.T) {
		fail("none", events.Failure{Message: "x"})
		r := readiness(t, b, task, id["none"])
		require.Equal(t, 0.0, *r.BackoffRequestSeconds)
		require.True(t, r.ReadyForExecution, "no backoff: ready at once")
	})
	t.Run("backoff linear", func(t *testing.T) {
		fail("linear", events.Failure{Message: "x"})
		r := readiness(t, b, task, id["linear"])
		require.Equal(t, 2.0, *r.BackoffRequestSeconds, "base × attempt 1")
		require.WithinDuration(t, r.LastFailureAt.Add(2*time.Second), *r.NextRetryAt, time.Millisecond)
		require.False(t, r.ReadyForExecution, "backoff not elapsed")
		_, err := events.StartStep(b.ctx, b.pool, id["linear"])
		require.ErrorContains(t, err, "backing off until")
		elapse("linear")
		require.True(t, readiness(t, b, task, id["linear"]).ReadyForExecution, "backoff elapsed")
		fail("linear", events.Failure{Message: "x"})
		require.Equal(t, 4.0, *readiness(t, b, task, id["linear"]).BackoffRequestSeconds, "base × attempt 2")
		elapse("linear")
		fail("linear", events.Failure{Message: "x"})
		require.Equal(t, 5.0, *readiness(t, b, task, id["linear"]).BackoffRequestSeconds, "capped at max_backoff_ms")
	})
	t.Run("backoff exponential and retry-after hint", func(t *testing.T) {
		fail("exponential", events.Failure{Message: "x"})
		require.Equal(t, 1.0, *readiness(t, b, task, id["exponential"]).BackoffRequestSeconds)
		elapse("exponential")
		fail("exponential", events.Failure{Message: "x"})
		require.Equal(t, 2.0, *readiness(t, b, task, id["exponential"]).BackoffRequestSeconds)
		elapse("exponential")
		fail("exponential", events.Failure{Message: "x", RetryAfter: 2500 * time.Millisecond})
		require.Equal(t, 2.5, *readiness(t, b, task, id["exponential"]).BackoffRequestSeconds, "the hint wins")
		elapse("exponential")
		fail("exponential", events.Failure{Message: "x", RetryAfter: time.Hour})
		r := readiness(t, b, task, id["exponential"])
		require.Equal(t, 3.0, *r.BackoffRequestSeconds, "the hint is capped at max_backoff_ms")
		require.Equal(t, 4, r.Attempts)
		elapse("exponential")
		fail("exponential", events.Failure{Message: "x"})
		r = readiness(t, b, task, id["exponential"])
		require.Equal(t, "error", r.CurrentState, "attempts exhausted")
		require.False(t, r.IsRetryable)
		require.False(t, r.RetryEligible)
		require.False(t, r.ReadyForExecution)
		_, err := events.StartStep(b.ctx, b.pool, id["exponential"])
		require.ErrorIs(t, err, events.ErrStepNotReady)
	})
	t.Run("non-retryable step", func(t *testing.T) {
		r := readiness(t, b, task, id["once"])
		require.False(t, r.IsRetryable)
		require.True(t, r.RetryEligible, "the first attempt is always allowed")
		require.True(t, r.ReadyForExecution)
		fail("once", events.Failure{Message: "x"})
		r = readiness(t, b, task, id["once"])
		require.Equal(t, "error", r.CurrentState)
		require.False(t, r.ReadyForExecution)
	})
	t.Run("permanently failed step", func(t *testing.T) {
		_, err := events.ResetStep(b.ctx, b.pool, id["once"], "")
		require.NoError(t, err)
		require.True(t, readiness(t, b, task, id["once"]).ReadyForExecution, "reset: fresh attempts")
		b.start(t, id["none"])
		_, err = b.client.FailStep(b.ctx, id["none"], events.Failure{Message: "x", Permanent: true})
		require.NoError(t, err)
		r := readiness(t, b, task, id["none"])
		require.Equal(t, "error", r.CurrentState)
		require.False(t, r.IsRetryable, "declared permanent although attempts remain")
		require.Less(t, r.Attempts, r.MaxAttempts)
		require.False(t, r.ReadyForExecution)
	})
}

func TestCreateTaskValidatesContext(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, err := b.client.CreateTask(b.ctx, events.CreateTaskParams{Namespace: "domain_events",
		Name: "domain_event_publishing", Context: json.RawMessage(`{"customer_id":"c"}`)})
	require.ErrorIs(t, err, events.ErrInvalidInput)
	require.ErrorContains(t, err, "order_id")
	_, err = b.client.CreateTask(b.ctx, events.CreateTaskParams{Namespace: "domain_events", Name: "nope"})
	require.ErrorIs(t, err, events.ErrNotFound)
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM stepevents.tasks`).Scan(&n))
	require.Zero(t, n)
}

func TestApplyTemplateIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tpl, err := template.LoadFile(fixturePath)
	require.NoError(t, err)
	require.NoError(t, b.client.ApplyTemplate(b.ctx, tpl))
	other, err := template.LoadFile(fixturePath, template.WithEnvironment("test"))
	require.NoError(t, err)
	err = b.client.ApplyTemplate(b.ctx, other)
	require.ErrorIs(t, err, events.ErrInvalidInput)
	require.ErrorContains(t, err, "already applied with a different definition")
	list, err := events.ListTemplates(b.ctx, b.pool)
	require.NoError(t, err)
	require.Equal(t, []events.TemplateInfo{{Namespace: "domain_events", Name: "domain_event_publishing", Version: "1.0.0",
		Description: tpl.Description, Steps: 4, Events: 6}}, list)
	var queues []string
	rows, err := b.pool.Query(b.ctx, `SELECT queue_name FROM pgmq.list_queues() ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var q string
		require.NoError(t, rows.Scan(&q))
		queues = append(queues, q)
	}
	require.Equal(t, []string{"domain_events_domain_events", "domain_events_domain_events_dlq"}, queues)
}

// Replicas applying the same new template at once all succeed, with one row.
func TestConcurrentApplyTemplate(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tpl, err := template.Load("backoff.yaml", []byte(backoffTemplate))
	require.NoError(t, err)
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- events.ApplyTemplate(b.ctx, b.pool, tpl) }()
	}
	for range 8 {
		require.NoError(t, <-errs)
	}
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM stepevents.task_templates WHERE namespace = 'backoff_ns'`).Scan(&n))
	require.Equal(t, 1, n)
}

// Step ids are UUIDv7: their time prefix orders steps by creation, so a
// step's index entries and history rows sit next to its neighbours' (random
// ids scattered them, and each checkpoint then cost a full page image per
// touched page).
func TestStepIDsAreTimeOrdered(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	unixMilli := func(id uuid.UUID) int64 {
		var ms int64
		for _, c := range id[:6] {
			ms = ms<<8 | int64(c)
		}
		return ms
	}
	var prevMilli int64
	for range 5 {
		before := time.Now().UnixMilli()
		_, steps := b.newTask(t)
		after := time.Now().UnixMilli()
		for name, id := range steps {
			require.Equal(t, uuid.Version(7), id.Version(), "step %s id %s", name, id)
			require.Equal(t, uuid.RFC4122, id.Variant(), "step %s id %s", name, id)
			ms := unixMilli(id)
			// The server's clock is this machine's: a second of slack.
			require.InDelta(t, float64(before+after)/2, float64(ms), 1000, "step %s id %s carries its creation time", name, id)
			require.Greater(t, ms, prevMilli, "a later task's step %s sorts after the earlier task's steps", name)
		}
		for _, id := range steps {
			prevMilli = max(prevMilli, unixMilli(id))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Starting, completing and failing a step each write one new version of its
// row (migration 00013): the state goes in the same UPDATE as the other
// columns, where it used to take a second (and, for a failure, a third).
// Completing also writes one version of each child's row, whose count of
// unmet parents drops (migration 00018).
func TestOneStepRowVersionPerOperation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, steps := b.newTask(t)
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(b.ctx) }()
	updates := func() int64 {
		var n int64
		require.NoError(t, tx.QueryRow(b.ctx, `SELECT n_tup_upd FROM pg_stat_xact_user_tables
			WHERE relid = 'stepevents.workflow_steps'::regclass`).Scan(&n))
		return n
	}
	for _, op := range []struct {
		name, sql string
		rows      int64
	}{
		{"start", `SELECT stepevents.start_step($1)`, 1},
		{"fail (retryable)", `SELECT stepevents.fail_step($1, '{"message": "boom"}')`, 1},
		{"start again", `SELECT stepevents.start_step($1)`, 1},
		{"complete", `SELECT stepevents.complete_step($1, '{"ok": true}')`, 2}, // and its one child, process_payment
	} {
		if op.name == "start again" {
			// The retry's backoff is over once next_retry_at has passed.
			_, err := tx.Exec(b.ctx, `UPDATE stepevents.workflow_steps SET next_retry_at = now() - interval '1 second'
				WHERE step_uuid = $1`, steps[stepValidate])
			require.NoError(t, err)
		}
		before := updates()
		_, err := tx.Exec(b.ctx, op.sql, steps[stepValidate])
		require.NoError(t, err, op.name)
		require.Equal(t, op.rows, updates()-before, "%s: step row versions written", op.name)
	}
}
