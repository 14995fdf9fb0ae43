package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// walMeter reads the server's WAL insert position around each measured
// round, so every side reports the WAL bytes it wrote per operation. On a
// server whose commits wait for a slow disk, WAL volume is what an extra
// message costs most; the position is server-wide, so anything else the
// server does meanwhile (autovacuum, checkpoints' full-page images) counts
// too, on every side alike.
type walMeter struct{ pool *pgxpool.Pool }

// position returns the current WAL insert position in bytes.
func (m *walMeter) position(ctx context.Context) (int64, error) {
	var lsn int64
	if err := m.pool.QueryRow(ctx, `SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint`).Scan(&lsn); err != nil {
		return 0, fmt.Errorf("error reading the WAL position: %w", err)
	}
	return lsn, nil
}
