// Package testdb gives each test its own freshly migrated PostgreSQL
// database, cloned from a template database (pgtestdb), so tests run in
// parallel and can commit, LISTEN and NOTIFY for real.
package testdb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver pgtestdb uses
	"github.com/peterldowns/pgtestdb"
	"go.uber.org/goleak"

	"github.com/stepevents/stepevents/migrations"
	sqlscripts "github.com/stepevents/stepevents/sql"
)

// Main wraps a package's TestMain: it runs the tests, removes any Docker
// container started for them and fails on leaked goroutines.
func Main(m *testing.M) {
	code := m.Run()
	examples.runCleanups()
	stopDocker()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// New returns a pool on a new database with every stepevents migration
// applied. The pool is closed and the database dropped when the test ends
// (a failed test keeps its database for inspection; its URL is logged).
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), NewURL(t))
	if err != nil {
		t.Fatalf("testdb: error connecting: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewURL is New for tests that need the URL (to run the CLI, or to connect
// as another role).
func NewURL(t testing.TB) string {
	t.Helper()
	return Custom(t, migrator{}).URL()
}

// NewEmptyURL returns the URL of a new database with no migrations applied,
// for migration tests.
func NewEmptyURL(t testing.TB) string {
	t.Helper()
	return Custom(t, pgtestdb.NoopMigrator{}).URL()
}

// Custom returns a fresh database built by m, from the server of ServerURL.
func Custom(t pgtestdb.TB, m pgtestdb.Migrator) *pgtestdb.Config {
	t.Helper()
	admin, err := ServerURL()
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	conf, err := configFromURL(admin)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return pgtestdb.Custom(t, conf, m)
}

func configFromURL(raw string) (pgtestdb.Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return pgtestdb.Config{}, fmt.Errorf("error parsing %s: %w", EnvURL, err)
	}
	q := u.Query()
	host, port := u.Hostname(), u.Port()
	if h := q.Get("host"); h != "" {
		host = h
		q.Del("host")
	}
	if port == "" {
		port = "5432"
	}
	user := u.User.Username()
	if q.Get("user") != "" {
		user = q.Get("user")
		q.Del("user")
	}
	pass, _ := u.User.Password()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	if strings.HasPrefix(host, "/") {
		q.Set("host", host)
		host = ""
	}
	return pgtestdb.Config{
		DriverName: "pgx",
		Host:       host,
		Port:       port,
		User:       user,
		Password:   pass,
		Database:   strings.TrimPrefix(u.Path, "/"),
		Options:    q.Encode(),
		// Tests create roles (least privilege) and terminate backends (fault
		// injection), so the per-test role is a superuser.
		TestRole: &pgtestdb.Role{
			Username:     "stepevents_test",
			Password:     "stepevents_test",
			Capabilities: "SUPERUSER",
		},
		ForceTerminateConnections: true,
	}, nil
}

// migrator builds the template database with stepevents' own migrations.
type migrator struct{}

// Hash covers every embedded migration and the pgmq-compatible schema, so a
// change to any of them builds a new template database.
func (migrator) Hash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS(), path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("error hashing migrations: %w", err)
	}
	h.Write([]byte(sqlscripts.PgmqCompat))
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func (migrator) Migrate(ctx context.Context, _ *sql.DB, conf pgtestdb.Config) error {
	pool, err := pgxpool.New(ctx, conf.URL())
	if err != nil {
		return fmt.Errorf("error connecting to the template database: %w", err)
	}
	defer pool.Close()
	return migrations.Migrate(ctx, pool)
}
