package runner_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/test/testdb"
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

// TestClaimWalksOnlyTheHeadOfTheBacklog: claiming one step reads a handful
// of workflow_steps rows, not every pending one, even right after a bulk
// insert that autovacuum has not analyzed yet (when the planner, believing
// the table empty, would rather sort it whole).
func TestClaimWalksOnlyTheHeadOfTheBacklog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	tpl, err := template.Load("runner_bench.yaml", []byte(benchTemplate))
	require.NoError(t, err)
	require.NoError(t, events.ApplyTemplate(ctx, pool, tpl))
	const backlog = 2000
	_, err = pool.Exec(ctx, `SELECT stepevents.create_task('runner_bench', 'runner_bench', NULL, '{}',
		stepevents.uuid_v7(), NULL) FROM generate_series(1, $1)`, backlog)
	require.NoError(t, err)

	got, read := claimCountingRows(t, pool, 1, nil)
	require.Len(t, got, 1)
	require.Less(t, read, int64(100), "one claim read %d of %d pending steps", read, backlog)
}

// claimCountingRows claims as claim does, in a transaction it commits, and
// also returns how many workflow_steps rows the claim read (any scan, as
// this backend counts them; counts not yet flushed include earlier
// statements, so it takes the delta).
func claimCountingRows(t *testing.T, pool *pgxpool.Pool, limit int, handlers []string) ([]claimed, int64) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	rowsRead := func() int64 {
		var n int64
		require.NoError(t, tx.QueryRow(ctx, `SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_user_tables
			WHERE relid = 'stepevents.workflow_steps'::regclass`).Scan(&n))
		return n
	}
	before := rowsRead()
	got := claim(t, tx, limit, handlers)
	read := rowsRead() - before
	require.NoError(t, tx.Commit(ctx))
	return got, read
}

// TestClaimPassesOverFailedTasks: the steps behind a step in error stay
// pending until an operator acts, and they are the oldest; a claim must not
// read them all (it did: 36-44 ms per claim past 20,000 of them). Once the
// failed step is resolved by hand, its children are claimable again.
func TestClaimPassesOverFailedTasks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 0)
	applyDiamond(t, b)
	const failed = 300 // 900 steps behind a step in error
	_, err := b.pool.Exec(ctx, `SELECT stepevents.create_task('diamond', 'diamond', NULL, '{}', stepevents.uuid_v7(), NULL)
		FROM generate_series(1, $1)`, failed)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `SELECT stepevents.fail_step((stepevents.start_step(step_uuid)).step_uuid,
		'{"message": "boom"}', true) FROM stepevents.workflow_steps WHERE name = 'a'`)
	require.NoError(t, err)
	require.Equal(t, 3*failed, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps WHERE state = 'pending'`))
	newer := newDiamondTask(t, b)

	got, read := claimCountingRows(t, b.pool, 1, nil)
	require.Len(t, got, 1)
	require.Equal(t, newer, got[0].Task, "the newer task's first step")
	require.Less(t, read, int64(100), "one claim read %d rows past %d steps behind a failure", read, 3*failed)

	var oldest uuid.UUID
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT step_uuid FROM stepevents.workflow_steps
		WHERE name = 'a' AND state = 'error' ORDER BY created_at, task_uuid LIMIT 1`).Scan(&oldest))
	_, err = events.ResolveStep(ctx, b.pool, oldest, "fixed by hand")
	require.NoError(t, err)
	got = claim(t, b.pool, 10, nil)
	require.Len(t, got, 2, "b and c of the resolved task")
	for _, c := range got {
		require.Contains(t, []string{"b", "c"}, c.Name)
	}
}

// TestClaimOfSeveralStepsDoesNotDeadlock: a claim locks one step, then its
// task row, then the next step. A transaction holding the first
// candidate's task row while it locks the second candidate must not
// deadlock with it (a claim that locked every candidate up front did).
func TestClaimOfSeveralStepsDoesNotDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 0)
	tasks := b.createOrders(t, make([]order, 2))

	other, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = other.Rollback(ctx) }()
	_, err = other.Exec(ctx, `SELECT 1 FROM stepevents.tasks WHERE task_uuid = $1 FOR UPDATE`, tasks[0])
	require.NoError(t, err)

	type result struct {
		got []claimed
		err error
	}
	done := make(chan result, 1)
	go func() {
		rows, err := b.pool.Query(ctx, claimSQL, 2, nil)
		if err != nil {
			done <- result{err: err}
			return
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
			var c claimed
			return c, r.Scan(&c.Step, &c.Task, &c.Name)
		})
		done <- result{got, err}
	}()
	// The claim now waits for the first task's row.
	waitFor(t, 10*time.Second, "the claim to wait for a lock", func() bool {
		return b.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE '%claim_ready_steps%'`) == 1
	})
	_, err = other.Exec(ctx, `SET LOCAL lock_timeout = '10s'`)
	require.NoError(t, err)
	_, err = other.Exec(ctx, `SELECT 1 FROM stepevents.workflow_steps WHERE task_uuid = $1 AND name = $2 FOR UPDATE`,
		tasks[1], validateStep)
	require.NoError(t, err, "locking the second task's step while the claim waits")
	require.NoError(t, other.Commit(ctx))

	r := <-done
	require.NoError(t, r.err)
	require.Len(t, r.got, 2)
	require.Equal(t, tasks[0], r.got[0].Task)
	require.Equal(t, tasks[1], r.got[1].Task)
}

// diamondPath: d waits for b and c, which both wait for a.
const diamondPath = "../../test/templates/good/diamond.yaml"

// applyDiamond applies the diamond template to b's database.
func applyDiamond(t *testing.T, b *bundle) {
	t.Helper()
	tpl, err := template.LoadFile(diamondPath)
	require.NoError(t, err)
	require.NoError(t, b.client.ApplyTemplate(context.Background(), tpl))
}

// newDiamondTask creates one task of the diamond template (applyDiamond
// first) and returns its uuid.
func newDiamondTask(t *testing.T, b *bundle) uuid.UUID {
	t.Helper()
	task, err := b.client.CreateTask(context.Background(), events.CreateTaskParams{Namespace: "diamond", Name: "diamond"})
	require.NoError(t, err)
	return task
}

// TestTwoClaimsOfSeveralStepsDoNotDeadlock: a claim of several steps moves
// forward in claim order only. Were it to go back (to a step of task A
// that was held when it passed it) after taking task B's row, it would
// deadlock with a claim holding A's row and waiting for B's. Two other
// transactions hold rows only to force that interleaving.
func TestTwoClaimsOfSeveralStepsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 0)
	applyDiamond(t, b)
	var tasks []uuid.UUID
	var steps []map[string]uuid.UUID
	for range 2 {
		task := newDiamondTask(t, b)
		list, err := events.TaskSteps(ctx, b.pool, task)
		require.NoError(t, err)
		m := map[string]uuid.UUID{}
		for _, s := range list {
			m[s.Name] = s.StepUUID
		}
		_, err = events.StartStep(ctx, b.pool, m["a"])
		require.NoError(t, err)
		_, err = b.client.CompleteStep(ctx, m["a"], json.RawMessage(`{}`))
		require.NoError(t, err)
		tasks, steps = append(tasks, task), append(steps, m)
	}
	A := steps[0] // task A is older than task B: its b and c come first
	waiting := func() int {
		return b.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE '%claim_ready_steps%'`)
	}
	// t0 holds A.b and task B's row; t0b holds A.c.
	t0, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = t0.Rollback(ctx) }()
	_, err = t0.Exec(ctx, `SELECT 1 FROM stepevents.workflow_steps WHERE step_uuid = $1 FOR UPDATE`, A["b"])
	require.NoError(t, err)
	_, err = t0.Exec(ctx, `SELECT 1 FROM stepevents.tasks WHERE task_uuid = $1 FOR UPDATE`, tasks[1])
	require.NoError(t, err)
	t0b, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = t0b.Rollback(ctx) }()
	_, err = t0b.Exec(ctx, `SELECT 1 FROM stepevents.workflow_steps WHERE step_uuid = $1 FOR UPDATE`, A["c"])
	require.NoError(t, err)

	claimTwo := func(done chan<- error) {
		rows, err := b.pool.Query(ctx, claimSQL, 2, nil)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
		}
		done <- err
	}
	second := make(chan error, 1)
	go claimTwo(second) // passes A.b and A.c (held), takes B.b, waits for task B
	waitFor(t, 10*time.Second, "the first claim to wait", func() bool { return waiting() == 1 })
	require.NoError(t, t0b.Rollback(ctx))
	first := make(chan error, 1)
	go claimTwo(first) // takes A.c (task A's row), then B.c, waits for task B
	waitFor(t, 10*time.Second, "the second claim to wait", func() bool { return waiting() == 2 })
	require.NoError(t, t0.Commit(ctx))
	require.NoError(t, <-first)
	require.NoError(t, <-second)
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps WHERE state = 'in_progress'`),
		"A.c and B.c by one claim, B.b by the other; A.b, passed while held, is left for the next claim")
}

// TestClaimTakesStepsThatTieInClaimOrder: steps of one task at the same
// position (apply_template does not insist on distinct positions) are all
// claimable in one claim: the claim order ends with step_uuid, so moving
// forward never skips a tie.
func TestClaimTakesStepsThatTieInClaimOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 0)
	applyDiamond(t, b)
	task := newDiamondTask(t, b)
	got := claim(t, b.pool, 10, nil)
	require.Len(t, got, 1)
	_, err := b.client.CompleteStep(ctx, got[0].Step, json.RawMessage(`{}`))
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE stepevents.workflow_steps SET position = 0 WHERE task_uuid = $1`, task)
	require.NoError(t, err)

	got = claim(t, b.pool, 10, nil)
	require.Len(t, got, 2, "b and c, both ready, both at position 0")
}
