package migrations_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

// Migration 00018 counts the unmet parents and the depth of the steps that
// exist when it runs, so work created before it is claimed as before; its
// Down removes both and the claim still works.
func TestUnmetParentsCountedForExistingSteps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, m := emptyDatabase(t)
	require.NoError(t, m.UpTo(ctx, 17))

	tpl, err := template.LoadFile("../test/templates/good/diamond.yaml")
	require.NoError(t, err)
	require.NoError(t, events.ApplyTemplate(ctx, pool, tpl))
	tasks := make([]uuid.UUID, 3)
	for i := range tasks {
		tasks[i] = uuid.Must(uuid.NewV7())
		_, err := pool.Exec(ctx, `SELECT stepevents.create_task('diamond', 'diamond', NULL, '{}', $1, NULL)`, tasks[i])
		require.NoError(t, err)
	}
	complete := func(task uuid.UUID, name string) {
		t.Helper()
		_, err := pool.Exec(ctx, `SELECT stepevents.complete_step((stepevents.start_step(step_uuid)).step_uuid, '{}')
			FROM stepevents.workflow_steps WHERE task_uuid = $1 AND name = $2`, task, name)
		require.NoError(t, err)
	}
	complete(tasks[1], "a")
	complete(tasks[2], "a")
	complete(tasks[2], "b")

	require.NoError(t, m.UpTo(ctx, 18))
	counts := func(task uuid.UUID) map[string]int {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT name, unmet_parents * 10 + depth FROM stepevents.workflow_steps
			WHERE task_uuid = $1`, task)
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
	// Each step's unmet parents times ten plus its depth (a 0, b and c 1, d 2).
	require.Equal(t, map[string]int{"a": 0, "b": 11, "c": 11, "d": 22}, counts(tasks[0]), "nothing done")
	require.Equal(t, map[string]int{"a": 0, "b": 1, "c": 1, "d": 22}, counts(tasks[1]), "a complete")
	require.Equal(t, map[string]int{"a": 0, "b": 1, "c": 1, "d": 12}, counts(tasks[2]), "a and b complete")

	claimed := func() []string {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT name FROM stepevents.claim_ready_steps(10)`)
		require.NoError(t, err)
		var names []string
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			names = append(names, n)
		}
		require.NoError(t, rows.Err())
		return names
	}
	require.Equal(t, []string{"a", "b", "c", "c"}, claimed(), "tasks in creation order, each step whose parents are done")

	require.NoError(t, m.DownTo(ctx, 17))
	var col *string
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT attname::text FROM pg_attribute
		WHERE attrelid = 'stepevents.workflow_steps'::regclass AND attname = 'unmet_parents' AND NOT attisdropped)`).Scan(&col))
	require.Nil(t, col, "Down drops the count")
	_, err = pool.Exec(ctx, `SELECT stepevents.create_task('diamond', 'diamond', NULL, '{}', stepevents.uuid_v7(), NULL)`)
	require.NoError(t, err, "create_task as 00014 defines it")
	require.Equal(t, []string{"a"}, claimed(), "the new task's first step")
}
