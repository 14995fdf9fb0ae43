package events_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// diamondPath: d waits for b and c, which both wait for a.
const diamondPath = "../test/templates/good/diamond.yaml"

// diamondTask applies the diamond template and creates one task of it,
// returning its steps in order.
func (b *bundle) diamondTask(t *testing.T) []events.Step {
	t.Helper()
	yaml, err := os.ReadFile(diamondPath)
	require.NoError(t, err)
	return b.taskOf(t, diamondPath, string(yaml), "diamond", "diamond")
}

// unmetParents reads each step's unmet_parents of task, by name (migration
// 00018: the claim index holds only steps whose count is 0, so a count too
// high would hide a runnable step from every claim; test/fault checks every
// step's count against the edges after its randomized run).
func unmetParents(t *testing.T, b *bundle, task uuid.UUID) map[string]int {
	t.Helper()
	return stepIntegers(t, b, task, "unmet_parents")
}

// stepIntegers reads an integer column of task's steps, by step name.
func stepIntegers(t *testing.T, b *bundle, task uuid.UUID, column string) map[string]int {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT name, `+column+` FROM stepevents.workflow_steps WHERE task_uuid = $1`, task)
	require.NoError(t, err)
	got := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		require.NoError(t, rows.Scan(&name, &n))
		got[name] = n
	}
	require.NoError(t, rows.Err())
	return got
}

// TestUnmetParentsFollowEveryTransition: each step's count of parents not
// yet done starts at its number of parents and drops by one when a parent
// completes or is resolved by hand, whatever happened to that parent
// before (retries, a release, an error and a reset); a cancelled parent
// stays unmet.
func TestUnmetParentsFollowEveryTransition(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	steps := b.diamondTask(t)
	task := steps[0].TaskUUID
	id := map[string]uuid.UUID{}
	for _, s := range steps {
		id[s.Name] = s.StepUUID
	}
	fresh := map[string]int{"a": 0, "b": 1, "c": 1, "d": 2}
	require.Equal(t, fresh, unmetParents(t, b, task), "created")

	do := func(what string, op func() error) {
		t.Helper()
		require.NoError(t, op(), what)
	}
	start := func(name string) func() error {
		return func() error { _, err := events.StartStep(b.ctx, b.pool, id[name]); return err }
	}
	fail := func(name string, permanent bool) func() error {
		return func() error {
			_, err := b.client.FailStep(b.ctx, id[name], events.Failure{Message: "boom", Permanent: permanent})
			return err
		}
	}
	complete := func(name string) func() error {
		return func() error {
			_, err := b.client.CompleteStep(b.ctx, id[name], json.RawMessage(`{"ok": true}`))
			return err
		}
	}
	backoffOver := func() error {
		_, err := b.pool.Exec(b.ctx, `UPDATE stepevents.workflow_steps SET next_retry_at = now() - interval '1 second'
			WHERE step_uuid = $1`, id["a"])
		return err
	}

	// a goes around every state short of done: the counts do not move.
	for _, step := range []struct {
		what string
		op   func() error
	}{
		{"start a", start("a")},
		{"fail a, retryable", fail("a", false)},
		{"backoff over", backoffOver},
		{"start a again", start("a")},
		{"release a", func() error { _, err := events.ReleaseStep(b.ctx, b.pool, id["a"], "shutdown"); return err }},
		{"start a a third time", start("a")},
		{"fail a for good", fail("a", true)},
		{"reset a", func() error { _, err := events.ResetStep(b.ctx, b.pool, id["a"], "again"); return err }},
	} {
		do(step.what, step.op)
		require.Equal(t, fresh, unmetParents(t, b, task), step.what)
	}

	do("resolve a by hand", func() error { _, err := events.ResolveStep(b.ctx, b.pool, id["a"], "done"); return err })
	require.Equal(t, map[string]int{"a": 0, "b": 0, "c": 0, "d": 2}, unmetParents(t, b, task))

	do("start b", start("b"))
	do("complete b", complete("b"))
	require.Equal(t, map[string]int{"a": 0, "b": 0, "c": 0, "d": 1}, unmetParents(t, b, task))

	do("cancel c", func() error { _, err := events.CancelStep(b.ctx, b.pool, id["c"], "stop"); return err })
	require.Equal(t, map[string]int{"a": 0, "b": 0, "c": 0, "d": 1}, unmetParents(t, b, task),
		"a cancelled parent is not done")

	// A second task, every step completed in order: d's count reaches 0
	// with the last of its parents.
	other := b.diamondTask(t)
	for _, s := range other {
		id[s.Name] = s.StepUUID
	}
	do("complete a", func() error { b.complete(t, id["a"], `{}`); return nil })
	do("complete c", func() error { b.complete(t, id["c"], `{}`); return nil })
	require.Equal(t, map[string]int{"a": 0, "b": 0, "c": 0, "d": 1}, unmetParents(t, b, other[0].TaskUUID))
	do("complete b", func() error { b.complete(t, id["b"], `{}`); return nil })
	require.Equal(t, map[string]int{"a": 0, "b": 0, "c": 0, "d": 0}, unmetParents(t, b, other[0].TaskUUID))

	// A third: a resolved by hand while it runs, d resolved by hand before
	// its parents are done; its count still follows them.
	third := b.diamondTask(t)
	for _, s := range third {
		id[s.Name] = s.StepUUID
	}
	do("start a", start("a"))
	do("resolve a while it runs", func() error { _, err := events.ResolveStep(b.ctx, b.pool, id["a"], "done"); return err })
	do("resolve d while pending", func() error { _, err := events.ResolveStep(b.ctx, b.pool, id["d"], "skip"); return err })
	require.Equal(t, map[string]int{"a": 0, "b": 0, "c": 0, "d": 2}, unmetParents(t, b, third[0].TaskUUID))
	do("complete b", func() error { b.complete(t, id["b"], `{}`); return nil })
	do("complete c", func() error { b.complete(t, id["c"], `{}`); return nil })
	require.Equal(t, map[string]int{"a": 0, "b": 0, "c": 0, "d": 0}, unmetParents(t, b, third[0].TaskUUID))
}

// A step's depth is the longest chain of dependencies above it, whatever
// order the template lists its steps in.
func TestStepDepth(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	steps := b.taskOf(t, "backwards.yaml", `name: backwards
namespace_name: backwards
version: 1.0.0
steps:
  - {name: last, handler: {callable: h}, dependencies: [middle, first]}
  - {name: middle, handler: {callable: h}, dependencies: [first]}
  - {name: first, handler: {callable: h}}
  - {name: alone, handler: {callable: h}}
`, "backwards", "backwards")
	got := stepIntegers(t, b, steps[0].TaskUUID, "depth")
	require.Equal(t, map[string]int{"first": 0, "alone": 0, "middle": 1, "last": 2}, got)
}

// lockWaiters counts the sessions of b's database waiting for a row lock.
func lockWaiters(t *testing.T, b *bundle) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n))
	return n
}

// inBackground runs sql (one step's uuid as $1) on its own connection and
// returns its outcome once the caller's holder has let go; it first waits
// until the statement is blocked on a lock.
func inBackground(t *testing.T, b *bundle, sql string, step uuid.UUID) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := b.pool.Exec(b.ctx, sql, step)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for lockWaiters(t, b) == 0 {
		require.True(t, time.Now().Before(deadline), "the background statement never waited for a lock")
		time.Sleep(5 * time.Millisecond)
	}
	return done
}

// Two parents of d completing at once, the second waiting for d's row until
// the first commits: each is counted, and d's count reaches 0.
func TestUnmetParentsUnderConcurrentParents(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := map[string]uuid.UUID{}
	steps := b.diamondTask(t)
	for _, s := range steps {
		id[s.Name] = s.StepUUID
	}
	b.complete(t, id["a"], `{}`)
	b.start(t, id["b"])
	b.start(t, id["c"])

	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(b.ctx) }()
	_, err = tx.Exec(b.ctx, `SELECT stepevents.complete_step($1, '{}')`, id["b"]) // holds d
	require.NoError(t, err)
	second := inBackground(t, b, `SELECT stepevents.complete_step($1, '{}')`, id["c"])
	require.NoError(t, tx.Commit(b.ctx))
	require.NoError(t, <-second)
	require.Equal(t, 0, unmetParents(t, b, steps[0].TaskUUID)["d"])
}

// transitiveYAML: c depends on a and on b, which depends on a.
const transitiveYAML = `name: transitive
namespace_name: transitive
version: 1.0.0
steps:
  - {name: a, handler: {callable: transitive.a}}
  - {name: b, handler: {callable: transitive.b}, dependencies: [a]}
  - {name: c, handler: {callable: transitive.c}, dependencies: [a, b]}
`

// Completing a locks its children b and c; an operator resolving b locks b,
// then its child c. Were a's children locked in uuid order, a task whose
// c sorts before b would deadlock the two; in (depth, uuid) order a waits
// for b before it takes c, and both go through.
func TestUnmetParentsLockParentsBeforeChildren(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var id map[string]uuid.UUID
	var task uuid.UUID
	for range 64 { // uuids are random within a millisecond: find a task where c sorts first
		id = map[string]uuid.UUID{}
		for _, s := range b.taskOf(t, "transitive.yaml", transitiveYAML, "transitive", "transitive") {
			id[s.Name], task = s.StepUUID, s.TaskUUID
		}
		if id["c"].String() < id["b"].String() {
			break
		}
	}
	require.Less(t, id["c"].String(), id["b"].String(), "no task of 64 had c before b")
	b.start(t, id["a"])

	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(b.ctx) }()
	_, err = tx.Exec(b.ctx, `SELECT FROM stepevents.workflow_steps WHERE step_uuid = $1 FOR UPDATE`, id["b"])
	require.NoError(t, err)
	completion := inBackground(t, b, `SELECT stepevents.complete_step($1, '{}')`, id["a"])
	_, err = tx.Exec(b.ctx, `SELECT stepevents.resolve_step($1, 'by hand')`, id["b"])
	require.NoError(t, err, "resolving b while a completes")
	require.NoError(t, tx.Commit(b.ctx))
	require.NoError(t, <-completion, "completing a while b is resolved")
	require.Equal(t, map[string]int{"a": 0, "b": 0, "c": 0}, unmetParents(t, b, task))
}
