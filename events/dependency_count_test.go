package events_test

import (
	"encoding/json"
	"os"
	"testing"

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
	got := map[string]int{}
	rows, err := b.pool.Query(b.ctx, `SELECT name, unmet_parents FROM stepevents.workflow_steps WHERE task_uuid = $1`, task)
	require.NoError(t, err)
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
}

// A step of one task completing concurrently with its sibling (both
// parents of the same child) is counted once each: the child's count
// reaches 0 whatever the interleaving.
func TestUnmetParentsUnderConcurrentParents(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	const tasks = 20
	type pair struct{ b, c, task uuid.UUID }
	var pairs []pair
	for range tasks {
		steps := b.diamondTask(t)
		id := map[string]uuid.UUID{}
		for _, s := range steps {
			id[s.Name] = s.StepUUID
		}
		b.complete(t, id["a"], `{}`)
		b.start(t, id["b"])
		b.start(t, id["c"])
		pairs = append(pairs, pair{id["b"], id["c"], steps[0].TaskUUID})
	}
	errs := make(chan error, 2*tasks)
	for _, p := range pairs {
		for _, s := range []uuid.UUID{p.b, p.c} {
			go func() {
				_, err := b.client.CompleteStep(b.ctx, s, json.RawMessage(`{}`))
				errs <- err
			}()
		}
	}
	for range 2 * tasks {
		require.NoError(t, <-errs)
	}
	for _, p := range pairs {
		require.Equal(t, 0, unmetParents(t, b, p.task)["d"])
	}
}
