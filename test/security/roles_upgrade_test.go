package security_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/migrations"
	sqlscripts "github.com/stepevents/stepevents/sql"
	"github.com/stepevents/stepevents/test/testdb"
)

// rolesAppliedAt is the last migration before the state machine gained
// functions the producer must run (append_transition in 00013, uuid_v7 in
// 00014).
const rolesAppliedAt = 12

// TestProducerKeepsWorkingAfterAnUpgrade: an operator ran sql/roles.sql on
// an older schema, in a database where new functions are not executable by
// PUBLIC, and then migrated. The producer role completes steps without the
// script being run again: the migrations grant what they add.
func TestProducerKeepsWorkingAfterAnUpgrade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, testdb.NewEmptyURL(t))
	require.NoError(t, err)
	t.Cleanup(admin.Close)
	m, err := migrations.New(admin, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	require.NoError(t, m.UpTo(ctx, rolesAppliedAt))
	tpl, err := template.LoadFile(fixturePath)
	require.NoError(t, err)
	require.NoError(t, events.ApplyTemplate(ctx, admin, tpl))
	_, err = admin.Exec(ctx, sqlscripts.Roles)
	require.NoError(t, err, "running sql/roles.sql")
	_, err = admin.Exec(ctx, `ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`)
	require.NoError(t, err)
	require.NoError(t, m.Up(ctx))

	e := &env{ctx: ctx, admin: admin}
	_, pool := e.newRole(t, "stepevents_producer")
	client := newClient(t, pool, events.Config{})
	_, steps := newTask(t, client, pool)
	_, err = events.StartStep(ctx, pool, steps[stepValidate])
	require.NoError(t, err)
	comp, err := client.CompleteStep(ctx, steps[stepValidate], []byte(validateResult))
	require.NoError(t, err)
	require.NotEmpty(t, comp.Published)
}
