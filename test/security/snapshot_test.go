package security_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// snapshot is what "nothing changed" compares: row counts of every
// stepevents table and of every pgmq table (queues, archives, meta), the
// state of every task and step, and the list of relations in both schemas.
type snapshot map[string]string

// stateQueries digest what a failed call could have changed without
// changing a row count.
var stateQueries = map[string]string{
	"steps": `SELECT coalesce(md5(string_agg(format('%s|%s|%s|%s|%s|%s', step_uuid, state, attempts, retry_blocked,
		results, last_error), ',' ORDER BY step_uuid)), '') FROM stepevents.workflow_steps`,
	"tasks": `SELECT coalesce(md5(string_agg(format('%s|%s', task_uuid, state), ',' ORDER BY task_uuid)), '')
		FROM stepevents.tasks`,
	"relations": `SELECT string_agg(format('%s.%s:%s', n.nspname, c.relname, c.relkind), ',' ORDER BY n.nspname, c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname IN ('stepevents', 'pgmq') AND c.relkind IN ('r', 'v', 'S', 'p')`,
}

// takeSnapshot reads a snapshot as the operator (superuser).
func takeSnapshot(t *testing.T, admin *pgxpool.Pool) snapshot {
	t.Helper()
	ctx := context.Background()
	s := snapshot{}
	for what, q := range stateQueries {
		var v string
		require.NoError(t, admin.QueryRow(ctx, q).Scan(&v), what)
		s[what] = v
	}
	rows, err := admin.Query(ctx, `SELECT n.nspname, c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname IN ('stepevents', 'pgmq') AND c.relkind IN ('r', 'p') ORDER BY 1, 2`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Schema, Name string }])
	require.NoError(t, err)
	for _, tb := range tables {
		var n int64
		table := pgx.Identifier{tb.Schema, tb.Name}.Sanitize()
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n))
		s["rows "+table] = fmt.Sprint(n)
	}
	return s
}

// requireUnchanged asserts the database is as in before.
func requireUnchanged(t *testing.T, admin *pgxpool.Pool, before snapshot, what string) {
	t.Helper()
	require.Equal(t, before, takeSnapshot(t, admin), "%s changed the database", what)
}
