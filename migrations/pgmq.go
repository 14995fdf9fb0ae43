package migrations

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3"

	sqlscripts "github.com/stepevents/stepevents/sql"
)

// PgmqVersion is the version of the Go migration that provides pgmq.
const PgmqVersion int64 = 1

// PgmqMigration provides schema pgmq: an existing pgmq (extension or pgmq's
// own SQL install) is used as it is; else the extension is created when the
// server offers it; else stepevents' pgmq-compatible schema is installed.
func PgmqMigration() *goose.Migration {
	return goose.NewGoMigration(PgmqVersion,
		&goose.GoFunc{RunTx: installPgmq},
		&goose.GoFunc{RunTx: uninstallPgmq},
	)
}

func installPgmq(ctx context.Context, tx *sql.Tx) error {
	var hasSchema, available bool
	err := tx.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pgmq'),
		EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgmq')`).Scan(&hasSchema, &available)
	if err != nil {
		return fmt.Errorf("error probing for pgmq: %w", err)
	}
	switch {
	case hasSchema:
		return nil
	case available:
		if _, err := tx.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS pgmq`); err != nil {
			return fmt.Errorf("error creating extension pgmq: %w", err)
		}
		return nil
	default:
		if _, err := tx.ExecContext(ctx, sqlscripts.PgmqCompat); err != nil {
			return fmt.Errorf("error installing the pgmq-compatible schema: %w", err)
		}
		return nil
	}
}

// uninstallPgmq drops the compatible schema only when stepevents installed it
// and it holds no queues but stepevents' own; an extension or a pgmq install
// made by someone else is left alone.
func uninstallPgmq(ctx context.Context, tx *sql.Tx) error {
	var ours bool
	err := tx.QueryRowContext(ctx, `SELECT coalesce(obj_description(n.oid, 'pg_namespace') = $1, false)
		FROM pg_namespace n WHERE n.nspname = 'pgmq'
		AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgmq')`, sqlscripts.PgmqCompatMarker).Scan(&ours)
	if err == sql.ErrNoRows {
		return nil
	}
	if err != nil {
		return fmt.Errorf("error probing for pgmq: %w", err)
	}
	if !ours {
		return nil
	}
	var foreign int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM pgmq.meta
		WHERE queue_name !~ '_domain_events(_dlq)?$'`).Scan(&foreign)
	if err != nil {
		return fmt.Errorf("error listing pgmq queues: %w", err)
	}
	if foreign > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DROP SCHEMA pgmq CASCADE`); err != nil {
		return fmt.Errorf("error dropping the pgmq-compatible schema: %w", err)
	}
	return nil
}
