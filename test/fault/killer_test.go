package fault_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// killBackends terminates a random worker backend (application_name
// fault-worker-*) after every killEvery acknowledged completions on average,
// until ctx ends, and returns how many it terminated. Pacing the kills by
// progress rather than by the clock keeps their density the same on a
// fast machine and on a loaded one.
func killBackends(ctx context.Context, admin *pgxpool.Pool, rng *rand.Rand, run *faultRun) (int, error) {
	kills := 0
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		next := run.acked.Load() + killEvery/2 + rng.Int64N(killEvery)
		for run.acked.Load() < next {
			select {
			case <-ctx.Done():
				return kills, nil
			case <-tick.C:
			}
		}
		rows, err := admin.Query(ctx, `
			SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND application_name LIKE 'fault-worker-%' ORDER BY pid`)
		if err != nil {
			return kills, ignoreStop(ctx, fmt.Errorf("error listing worker backends: %w", err))
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return kills, ignoreStop(ctx, fmt.Errorf("error listing worker backends: %w", err))
		}
		if len(pids) == 0 {
			continue
		}
		var ok bool
		if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pids[rng.IntN(len(pids))]).Scan(&ok); err != nil {
			return kills, ignoreStop(ctx, fmt.Errorf("error terminating a worker backend: %w", err))
		}
		if ok {
			kills++
		}
	}
}

// ignoreStop drops err when it only reports ctx ending.
func ignoreStop(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
