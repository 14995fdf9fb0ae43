package pgmqcontract_test

// Database provisioning for the contract suite. Everything backend-specific
// lives in this file, so it can later be swapped for testdb.New.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

const (
	defaultTestDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	compatSchemaPath       = "../../sql/pgmq/pgmq_compat.sql"
)

func testDatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultTestDatabaseURL
}

// newDB returns a pool on a fresh database that contains schema pgmq.
//
// Backend selection (env PGMQ_CONTRACT_BACKEND): "extension" requires
// CREATE EXTENSION pgmq, "compat" installs sql/pgmq/pgmq_compat.sql, and
// empty (default) uses the extension when the server offers it and the
// compatible schema otherwise. Nothing is installed when the database already
// has a pgmq schema (e.g. one cloned from a template).
func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var b [8]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	dbName := "pgmqc_" + hex.EncodeToString(b[:])

	admin, err := pgx.Connect(ctx, testDatabaseURL())
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbName}.Sanitize())
	require.NoError(t, admin.Close(ctx))
	require.NoError(t, err)

	cfg, err := pgxpool.ParseConfig(testDatabaseURL())
	require.NoError(t, err)
	cfg.ConnConfig.Database = dbName
	cfg.MaxConns = 6
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)

	t.Cleanup(func() {
		pool.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		conn, err := pgx.Connect(cctx, testDatabaseURL())
		if err != nil {
			t.Errorf("drop database %s: %v", dbName, err)
			return
		}
		defer func() { _ = conn.Close(cctx) }()
		if _, err := conn.Exec(cctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", dbName, err)
		}
	})

	var hasSchema bool
	require.NoError(t, pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pgmq')`).Scan(&hasSchema))
	if hasSchema {
		return pool
	}

	backend := os.Getenv("PGMQ_CONTRACT_BACKEND")
	if backend == "" {
		var available bool
		require.NoError(t, pool.QueryRow(ctx,
			`SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgmq')`).Scan(&available))
		backend = "compat"
		if available {
			backend = "extension"
		}
	}
	switch backend {
	case "extension":
		_, err = pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pgmq")
		require.NoError(t, err)
	case "compat":
		script, err := os.ReadFile(compatSchemaPath)
		require.NoError(t, err)
		// No arguments: pgx uses the simple protocol, so the multi-statement
		// script runs as one implicit transaction.
		_, err = pool.Exec(ctx, string(script))
		require.NoError(t, err)
	default:
		t.Fatalf("PGMQ_CONTRACT_BACKEND=%q: want extension, compat or empty", backend)
	}
	return pool
}
