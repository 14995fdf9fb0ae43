// Package migrations holds stepevents' goose migrations, embedded, and runs
// them with a goose Provider that keeps to itself: its own version table, its
// own advisory lock and no global registry, so an application that also uses
// goose is not disturbed.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// VersionTable is the table in which stepevents records its applied migrations.
const VersionTable = "stepevents_migrations"

// LockID is the advisory-lock key stepevents' migrations hold while they run.
// It differs from goose's default so the host's own goose never waits on it.
const LockID int64 = 0x5e_e0_e1_1d // "stepevents" in spirit; any fixed value works

// FS returns the SQL migrations, for hosts that run goose themselves. They
// must use their own version table and also apply the Go migration for pgmq
// (see PgmqMigration).
func FS() fs.FS { return files }

// Status is one migration's state.
type Status struct {
	Version int64
	Source  string
	Applied bool
}

// Migrator runs stepevents' migrations on one database.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
}

// New returns a Migrator for pool. Close it when done; that does not close
// the pool.
func New(pool *pgxpool.Pool, logger *slog.Logger) (*Migrator, error) {
	db := stdlib.OpenDBFromPool(pool)
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(LockID))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("error creating migration lock: %w", err)
	}
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker),
		goose.WithGoMigrations(PgmqMigration()),
	}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, files, opts...)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("error creating migration provider: %w", err)
	}
	return &Migrator{db: db, provider: provider}, nil
}

// Close releases the Migrator's database handle (not the pool).
func (m *Migrator) Close() error {
	return m.provider.Close()
}

// Up applies every pending migration.
func (m *Migrator) Up(ctx context.Context) error {
	if _, err := m.provider.Up(ctx); err != nil {
		return fmt.Errorf("error migrating up: %w", err)
	}
	return nil
}

// DownTo rolls back to version (0 removes everything stepevents created).
func (m *Migrator) DownTo(ctx context.Context, version int64) error {
	if _, err := m.provider.DownTo(ctx, version); err != nil {
		return fmt.Errorf("error migrating down to %d: %w", version, err)
	}
	return nil
}

// Status lists every migration and whether it is applied. It only reads:
// on a database stepevents never migrated it reports nothing applied
// without creating the version table (goose's Status would).
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	var exists bool
	if err := m.db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, VersionTable).Scan(&exists); err != nil {
		return nil, fmt.Errorf("error reading migration status: %w", err)
	}
	if !exists {
		var out []Status
		for _, s := range m.provider.ListSources() {
			out = append(out, Status{Version: s.Version, Source: s.Path})
		}
		return out, nil
	}
	st, err := m.provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("error reading migration status: %w", err)
	}
	out := make([]Status, 0, len(st))
	for _, s := range st {
		out = append(out, Status{Version: s.Source.Version, Source: s.Source.Path, Applied: s.State == goose.StateApplied})
	}
	return out, nil
}

// Migrate applies all of stepevents' pending migrations to pool's database.
// It is safe to call from several processes at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	m, err := New(pool, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Up(ctx)
}

// UpTo applies pending migrations up to and including version.
func (m *Migrator) UpTo(ctx context.Context, version int64) error {
	if _, err := m.provider.UpTo(ctx, version); err != nil {
		return fmt.Errorf("error migrating up to %d: %w", version, err)
	}
	return nil
}
