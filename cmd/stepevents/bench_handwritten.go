package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// durableByHandSide is the floor for the fixture's durable publishing: what
// a program gets if it writes durable messages like the fixture's by hand,
// with no template, no condition evaluation, no event building and no
// validation. It records the bare step (record_step_result, pipelined with
// BEGIN, as CompleteStep does), then in one more round trip sends two ~2 KB
// durable events (copies of one captured at setup, the fixture's shape)
// with one pgmq.send_batch and commits: CompleteStep's round trips. It
// compares with the fixture's durable part (publishing_overhead/
// durable_part), which publishes the same two messages and no fast copy.
// The fast copies' cost is measured apart, by the concurrency sweep
// (after-commit fast delivery against durable-only).
func (e *benchEnv) durableByHandSide(clients int) *benchSide {
	return &benchSide{
		name: "durable_messages_by_hand", unit: "completions", clients: clients,
		prepare: func(ctx context.Context, n int) ([]uuid.UUID, error) { return e.prepareSteps(ctx, tplBare, n) },
		op: func(ctx context.Context, step uuid.UUID) (int, error) {
			conn, err := e.pool.Acquire(ctx)
			if err != nil {
				return 0, err
			}
			defer conn.Release()
			rollback := func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_, _ = conn.Exec(rctx, `ROLLBACK`)
			}
			first := &pgx.Batch{}
			first.Queue(`BEGIN`)
			first.Queue(`SELECT stepevents.record_step_result($1, true, $2, NULL, false, NULL)`, step, benchResult)
			if err := conn.SendBatch(ctx, first).Close(); err != nil {
				rollback()
				return 0, fmt.Errorf("error recording %s: %w", step, err)
			}
			second := &pgx.Batch{}
			second.Queue(`SELECT pgmq.send_batch($1::text, ARRAY[$2::jsonb, $2::jsonb], ARRAY[$3::jsonb, $3::jsonb])`,
				benchQueue, e.durableMsg, e.durableHdr)
			second.Queue(`COMMIT`)
			if err := conn.SendBatch(ctx, second).Close(); err != nil {
				rollback()
				return 0, fmt.Errorf("error publishing for %s by hand: %w", step, err)
			}
			return 1, nil
		},
	}
}
