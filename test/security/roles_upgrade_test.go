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
// an older schema and then migrated. The producer role claims and completes
// steps without the script being run again: the migrations grant what they
// add. And what roles.sql locked down stays locked: no stepevents function
// is executable by PUBLIC afterwards, whether or not the database's default
// privileges still give new functions to PUBLIC.
func TestProducerKeepsWorkingAfterAnUpgrade(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                 string
		revokeDefaultExecute bool
	}{{"DefaultPrivileges", false}, {"NoExecuteForPublicByDefault", true}} {
		t.Run(tc.name, func(t *testing.T) {
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
			if tc.revokeDefaultExecute {
				_, err = admin.Exec(ctx, `ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`)
				require.NoError(t, err)
			}
			require.NoError(t, m.Up(ctx))

			var public []string
			require.NoError(t, admin.QueryRow(ctx, `SELECT coalesce(array_agg(p.oid::regprocedure::text), '{}')
				FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
				WHERE p.pronamespace = 'stepevents'::regnamespace AND a.grantee = 0`).Scan(&public))
			require.Empty(t, public, "functions executable by PUBLIC after the upgrade")

			e := &env{ctx: ctx, admin: admin}
			_, pool := e.newRole(t, "stepevents_producer")
			client := newClient(t, pool, events.Config{})
			_, steps := newTask(t, client, pool)
			claimed := claimAs(t, pool, "domain_events.validate_order")
			require.Equal(t, steps[stepValidate], claimed.StepUUID)
			comp, err := client.CompleteClaimedStep(ctx, claimed.StepUUID, claimed.ClaimID, []byte(validateResult))
			require.NoError(t, err)
			require.NotEmpty(t, comp.Published)
			requireCanAbort(t, pool)
		})
	}
}

// TestMigrationsLeavePublicAloneWithoutRolesScript: roles are server-wide,
// so stepevents_producer may exist because another database on the server
// ran sql/roles.sql. In a database where it was not run, the migrations
// must not take EXECUTE away from PUBLIC: an application role relying on
// PUBLIC would lose functions the ones it may call need.
func TestMigrationsLeavePublicAloneWithoutRolesScript(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Make sure the role exists on the server: roles.sql in a database of its own.
	other, err := pgxpool.New(ctx, testdb.NewURL(t))
	require.NoError(t, err)
	t.Cleanup(other.Close)
	_, err = other.Exec(ctx, sqlscripts.Roles)
	require.NoError(t, err, "running sql/roles.sql elsewhere")

	admin, err := pgxpool.New(ctx, testdb.NewEmptyURL(t))
	require.NoError(t, err)
	t.Cleanup(admin.Close)
	require.NoError(t, migrations.Migrate(ctx, admin))
	for _, fn := range []string{"stepevents.next_claimable_step(text[], timestamptz, uuid, integer, uuid)",
		"stepevents.record_step_result(uuid, boolean, jsonb, jsonb, boolean, double precision, bigint)",
		"stepevents.append_transition(stepevents.workflow_steps, text, jsonb)", "stepevents.uuid_v7()"} {
		var ok bool
		require.NoError(t, admin.QueryRow(ctx, `SELECT has_function_privilege('public', $1, 'EXECUTE')`, fn).Scan(&ok))
		require.True(t, ok, "PUBLIC may still execute %s", fn)
	}
}
