package runner_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// claimSQL claims as each runner worker does.
const claimSQL = `SELECT step_uuid, task_uuid, name FROM stepevents.claim_ready_steps($1, $2)`

type claimed struct {
	Step, Task uuid.UUID
	Name       string
}

func claim(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, limit int, handlers []string) []claimed {
	t.Helper()
	rows, err := q.Query(context.Background(), claimSQL, limit, handlers)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
		var c claimed
		return c, r.Scan(&c.Step, &c.Task, &c.Name)
	})
	require.NoError(t, err)
	return out
}

// TestClaimReadySteps: a claim starts at most its limit of ready steps,
// oldest task first, only of the handlers asked for, never a step whose
// parents are not done, and skips (without waiting for) a step another
// transaction holds.
func TestClaimReadySteps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 0)
	tasks := b.createOrders(t, make([]order, 4)) // in creation order

	// Only each task's first step (validate) has no parents.
	require.Empty(t, claim(t, b.pool, 10, []string{fixtureSteps[paymentStep], fixtureSteps[inventoryStep]}),
		"steps whose parents are not done are never claimed")

	got := claim(t, b.pool, 2, nil)
	require.Len(t, got, 2, "at most the limit")
	for i, c := range got {
		require.Equal(t, tasks[i], c.Task, "oldest task first")
		require.Equal(t, validateStep, c.Name)
	}

	// Another transaction holds the third task's validate step: the claim
	// skips it rather than wait, and takes the fourth task's.
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT 1 FROM stepevents.workflow_steps WHERE task_uuid = $1 AND name = $2 FOR UPDATE`,
		tasks[2], validateStep)
	require.NoError(t, err)
	got = claim(t, b.pool, 10, []string{fixtureSteps[validateStep]})
	require.Len(t, got, 1)
	require.Equal(t, tasks[3], got[0].Task)
	require.NoError(t, tx.Rollback(ctx))

	got = claim(t, b.pool, 10, nil)
	require.Len(t, got, 1, "the step released by the other transaction, and nothing else")
	require.Equal(t, tasks[2], got[0].Task)
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps WHERE state = 'in_progress'`))

	_, err = b.pool.Exec(ctx, claimSQL, 0, nil)
	require.ErrorContains(t, err, "claim limit must be between 1 and 1000")
}
