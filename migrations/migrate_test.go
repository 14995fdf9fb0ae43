package migrations_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/migrations"
	"github.com/stepevents/stepevents/test/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func countObjects(t *testing.T, pool *pgxpool.Pool) (schemas int) {
	t.Helper()
	err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_namespace WHERE nspname IN ('stepevents', 'pgmq')`).Scan(&schemas)
	require.NoError(t, err)
	return schemas
}

// emptyDatabase returns a pool on a new empty database and a Migrator of
// it, both closed when the test ends.
func emptyDatabase(t *testing.T) (*pgxpool.Pool, *migrations.Migrator) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), testdb.NewEmptyURL(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	m, err := migrations.New(pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return pool, m
}

func TestUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, m := emptyDatabase(t)

	require.NoError(t, m.Up(ctx))
	require.Equal(t, 2, countObjects(t, pool))
	st, err := m.Status(ctx)
	require.NoError(t, err)
	for _, s := range st {
		require.True(t, s.Applied, "migration %d applied", s.Version)
	}

	// A namespace queue created by applying a template must not stop the
	// compatible pgmq schema from being removed on the way down.
	_, err = pool.Exec(ctx, `SELECT pgmq.create('orders_domain_events')`)
	require.NoError(t, err)

	require.NoError(t, m.DownTo(ctx, 0))
	require.Equal(t, 0, countObjects(t, pool))
	var table string
	require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce(to_regclass('public.`+migrations.VersionTable+`')::text, '')`).Scan(&table))
	require.NotEmpty(t, table, "stepevents keeps its own version table")

	require.NoError(t, m.Up(ctx))
	require.Equal(t, 2, countObjects(t, pool))
}

// A host application's goose table is untouched by stepevents' migrations.
func TestOwnVersionTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testdb.NewEmptyURL(t))
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE goose_db_version (id serial, version_id bigint, is_applied bool, tstamp timestamp);
		INSERT INTO goose_db_version (version_id, is_applied) VALUES (42, true)`)
	require.NoError(t, err)
	require.NoError(t, migrations.Migrate(ctx, pool))
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM goose_db_version`).Scan(&n))
	require.Equal(t, 1, n)
}

// A pgmq schema that already exists (the extension, or pgmq's SQL install)
// is used as it is, and left alone on the way down.
func TestExistingPgmqKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, m := emptyDatabase(t)
	_, err := pool.Exec(ctx, `CREATE SCHEMA pgmq; CREATE TABLE pgmq.meta (queue_name varchar UNIQUE NOT NULL)`)
	require.NoError(t, err)
	require.NoError(t, m.UpTo(ctx, migrations.PgmqVersion))
	var comment *string
	require.NoError(t, pool.QueryRow(ctx, `SELECT obj_description('pgmq'::regnamespace, 'pg_namespace')`).Scan(&comment))
	require.Nil(t, comment, "the existing schema was not replaced")
	require.NoError(t, m.DownTo(ctx, 0))
	require.Equal(t, 1, countObjects(t, pool), "a foreign pgmq schema survives migrate down")
}

// Status on a database stepevents never migrated lists every migration as
// pending and creates nothing, not even the version table.
func TestStatusOnEmptyDatabaseCreatesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, m := emptyDatabase(t)
	st, err := m.Status(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, st)
	for _, s := range st {
		require.False(t, s.Applied, "migration %d", s.Version)
	}
	var table string
	require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce(to_regclass('public.`+migrations.VersionTable+`')::text, '')`).Scan(&table))
	require.Empty(t, table, "status created the version table")

	require.NoError(t, m.Up(ctx))
	st, err = m.Status(ctx)
	require.NoError(t, err)
	for _, s := range st {
		require.True(t, s.Applied, "migration %d", s.Version)
	}
}
