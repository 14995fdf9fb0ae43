package events_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/test/testdb"
)

// A database stepevents was never migrated in answers ErrNotMigrated, which
// says what to run, not ErrQueueMissing or a bare "relation does not exist".
func TestUnmigratedDatabaseSaysMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testdb.NewEmptyURL(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	_, err = events.NewClient(ctx, pool, nil)
	require.ErrorIs(t, err, events.ErrNotMigrated)
	require.NotErrorIs(t, err, events.ErrQueueMissing)
	require.ErrorContains(t, err, "stepevents migrate up")

	_, err = events.StartStep(ctx, pool, uuid.New())
	require.ErrorIs(t, err, events.ErrNotMigrated)
	_, err = events.Readiness(ctx, pool, uuid.New())
	require.ErrorIs(t, err, events.ErrNotMigrated)
	_, err = events.GetTask(ctx, pool, uuid.New())
	require.ErrorIs(t, err, events.ErrNotMigrated)
}

// A database migrated before a function existed (here: one dropped) says
// migrate too; a missing namespace queue stays ErrQueueMissing
// (TestCompleteStepOwnTransactionFailures).
func TestMissingFunctionSaysMigrate(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, steps := b.newTask(t)
	b.start(t, steps[stepValidate])
	_, err := b.pool.Exec(b.ctx, `DROP FUNCTION stepevents.record_step_result`)
	require.NoError(t, err)
	_, err = b.client.CompleteStep(b.ctx, steps[stepValidate], json.RawMessage(validResult))
	require.ErrorIs(t, err, events.ErrNotMigrated)
	st, err := events.GetStep(b.ctx, b.pool, steps[stepValidate])
	require.NoError(t, err)
	require.Equal(t, "in_progress", st.State, "nothing changed")
}
