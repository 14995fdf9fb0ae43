package main

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// handWrittenChannel is where the hand-written side's NOTIFYs go; nobody
// listens, as nobody listens to the fixture side's fast events in the
// completion group.
const handWrittenChannel = "stepevents_bench_hand_written"

// handWrittenSide is the floor for publishing the fixture's events: what a
// program gets if it writes the same messages by hand, with no template,
// no condition evaluation, no event building, no validation and no
// notifier. It records the bare step (record_step_result, pipelined with
// BEGIN, as CompleteStep does), then in one more round trip sends the
// fixture's two durable messages with one pgmq.send_batch, NOTIFYs its two
// fast copies inside the transaction, and commits: the round trips of
// CompleteStep, with the bytes of the fixture's events (a real event
// captured at setup stands in for each).
func (e *benchEnv) handWrittenSide(clients int) *benchSide {
	return &benchSide{
		name: "hand_written_same_messages", unit: "completions", clients: clients,
		prepare: func(ctx context.Context, n int) ([]uuid.UUID, error) { return e.prepareSteps(ctx, tplBare, n) },
		op: func(ctx context.Context, step uuid.UUID) (int, error) {
			conn, err := e.pool.Acquire(ctx)
			if err != nil {
				return 0, err
			}
			defer conn.Release()
			first := &pgx.Batch{}
			first.Queue(`BEGIN`)
			first.Queue(`SELECT stepevents.record_step_result($1, true, $2, NULL, false, NULL)`, step, benchResult)
			if err := conn.SendBatch(ctx, first).Close(); err != nil {
				_, _ = conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
				return 0, fmt.Errorf("error recording %s: %w", step, err)
			}
			second := &pgx.Batch{}
			second.Queue(`SELECT pgmq.send_batch($1::text, ARRAY[$2::jsonb, $2::jsonb], ARRAY[$3::jsonb, $3::jsonb])`,
				benchQueue, e.durableMsg, e.durableHdr)
			// Distinct payloads: PostgreSQL folds identical NOTIFYs of a transaction.
			second.Queue(`SELECT pg_notify($1, $2 || '1'), pg_notify($1, $2 || '2')`, handWrittenChannel, e.durableMsg)
			second.Queue(`COMMIT`)
			if err := conn.SendBatch(ctx, second).Close(); err != nil {
				_, _ = conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
				return 0, fmt.Errorf("error publishing for %s by hand: %w", step, err)
			}
			return 1, nil
		},
	}
}
