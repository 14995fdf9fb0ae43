package main

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/consumer"
)

// Targets of issue 6, reported (never asserted) next to each figure.
var (
	targetPublishing = &target{Metric: "ratio", Op: ">=", Value: 0.75}
	targetDurable    = &target{Metric: "ratio", Op: ">=", Value: 0.9}
	targetPhysical   = &target{Metric: "ratio", Op: ">=", Value: 0.5}
	targetFastP99    = &target{Metric: "p99_ms", Op: "<=", Value: 5}
	targetSweep      = &target{Metric: "ratio", Op: ">=", Value: 0.8}
	targetConsumer   = &target{Metric: "ratio", Op: ">=", Value: 0.9}
)

// Scenario parameters.
const (
	durableEventsPerTx = 4  // bench_durable4.yaml declares four durable events
	consumerBatch      = 10 // consumer.DefaultBatchSize, also the bare loop's
)

// sweepClients are the concurrency sweep's client counts.
var sweepClients = []int{1, 2, 4, 8, 16, 32}

// benchGroups lists every scenario group in run order.
func (e *benchEnv) benchGroups() []benchGroup {
	var gs []benchGroup
	for _, c := range []int{1, 8} {
		gs = append(gs, e.completionGroup(c))
	}
	for _, c := range []int{1, 8} {
		gs = append(gs, e.durableGroup(c))
	}
	gs = append(gs, e.fastGroup(200, false), e.fastGroup(1000, true), e.fastGroup(0, false))
	for _, c := range sweepClients {
		gs = append(gs, e.sweepGroup(c))
	}
	return append(gs, e.consumerGroup())
}

// completeSide completes prepared steps of tpl with client, one
// transaction per completion (CompleteStep: begin, record, emit, commit,
// then after-commit fast events handed to the notifier).
func (e *benchEnv) completeSide(name, tpl string, client *events.Client, clients int) *benchSide {
	return &benchSide{
		name: name, unit: "completions", clients: clients,
		prepare: func(ctx context.Context, n int) ([]uuid.UUID, error) { return e.prepareSteps(ctx, tpl, n) },
		op: func(ctx context.Context, step uuid.UUID) (int, error) {
			comp, err := client.CompleteStep(ctx, step, benchResult)
			if err != nil {
				return 0, err
			}
			if len(comp.Errors) > 0 {
				return 0, fmt.Errorf("routing error completing %s: %w", step, comp.Errors[0])
			}
			return 1, nil
		},
	}
}

// insertSide is the physical limit: an autocommit single-row INSERT, the
// fastest durable write this server does.
func (e *benchEnv) insertSide(clients int) *benchSide {
	return &benchSide{
		name: "bare_insert_commit", unit: "transactions", clients: clients,
		op: func(ctx context.Context, _ uuid.UUID) (int, error) {
			_, err := e.pool.Exec(ctx, `INSERT INTO bench_insert (body) VALUES ($1)`, "step complete")
			return 1, err
		},
	}
}

// completionGroup measures a completion with the fixture's events against
// the same completion without declarations and against a bare INSERT.
func (e *benchEnv) completionGroup(clients int) benchGroup {
	pub := fmt.Sprintf("publishing_overhead/c%d", clients)
	part := fmt.Sprintf("publishing_overhead/durable_part/c%d", clients)
	hand := fmt.Sprintf("publishing_overhead/durable_by_hand/c%d", clients)
	vsHand := fmt.Sprintf("publishing_overhead/durable_part_vs_by_hand/c%d", clients)
	phys := fmt.Sprintf("physical_limit/c%d", clients)
	return benchGroup{
		name: fmt.Sprintf("completion c%d", clients), rows: []string{pub, part, hand, vsHand, phys},
		sides: []*benchSide{
			e.completeSide("complete_with_fixture_events", tplPublishing, e.afterCommit, clients),
			e.completeSide("complete_without_declarations", tplBare, e.afterCommit, clients),
			e.insertSide(clients),
			e.completeSide("complete_durable_only", tplDurableOnly, e.afterCommit, clients),
			e.durableByHandSide(clients),
		},
		report: func(s []*benchSide) []scenarioResult {
			return []scenarioResult{
				throughputRow(pub, clients, s[0].summary(), s[1].summary(), targetPublishing),
				// Not a target: the fixture's durable events alone against
				// the bare step, to tell the durable cost from the fast one.
				throughputRow(part, clients, s[3].summary(), s[1].summary(), nil),
				// Not targets: durable messages like the fixture's written by
				// hand on the bare step (the floor any publisher of them
				// meets), and stepevents' durable part against that floor.
				throughputRow(hand, clients, s[4].summary(), s[1].summary(), nil),
				throughputRow(vsHand, clients, s[3].summary(), s[4].summary(), nil),
				throughputRow(phys, clients, s[0].summary(), s[2].summary(), targetPhysical),
			}
		},
	}
}

// durableGroup measures stepevents publishing four durable events in the
// completion transaction against the bare completion plus four direct
// pgmq.send calls (one pipelined round trip) in the same transaction.
func (e *benchEnv) durableGroup(clients int) benchGroup {
	row := fmt.Sprintf("durable_vs_pgmq/c%d", clients)
	bare := &benchSide{
		name: fmt.Sprintf("bare_completion_plus_%d_pgmq_send", durableEventsPerTx), unit: "completions", clients: clients,
		prepare: func(ctx context.Context, n int) ([]uuid.UUID, error) { return e.prepareSteps(ctx, tplBare, n) },
	}
	bare.op = func(ctx context.Context, step uuid.UUID) (int, error) {
		err := e.afterCommit.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			if _, err := e.afterCommit.CompleteStepTx(ctx, tx, step, benchResult); err != nil {
				return err
			}
			b := &pgx.Batch{}
			for range durableEventsPerTx {
				b.Queue(`SELECT pgmq.send($1::text, $2::jsonb, $3::jsonb)`, benchQueue, e.durableMsg, e.durableHdr)
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return fmt.Errorf("error sending to pgmq: %w", err)
			}
			return nil
		})
		return 1, err
	}
	return benchGroup{
		name: fmt.Sprintf("durable vs pgmq c%d", clients), rows: []string{row},
		sides: []*benchSide{
			e.completeSide(fmt.Sprintf("complete_with_%d_durable_events", durableEventsPerTx), tplDurable4,
				e.afterCommit, clients),
			bare,
		},
		report: func(s []*benchSide) []scenarioResult {
			return []scenarioResult{throughputRow(row, clients, s[0].summary(), s[1].summary(), targetDurable)}
		},
	}
}

// sweepGroup measures completions with fast events (after commit, the
// default, and in the transaction) against the same durable work without
// fast delivery, at one client count.
func (e *benchEnv) sweepGroup(clients int) benchGroup {
	ac := fmt.Sprintf("concurrency_sweep/after_commit/c%d", clients)
	it := fmt.Sprintf("concurrency_sweep/in_tx/c%d", clients)
	var tg *target
	if clients == 8 || clients == 16 {
		tg = targetSweep
	}
	return benchGroup{
		name: fmt.Sprintf("sweep c%d", clients), rows: []string{ac, it},
		sides: []*benchSide{
			e.completeSide("complete_fast_after_commit", tplPublishing, e.afterCommit, clients),
			e.completeSide("complete_fast_in_transaction", tplPublishing, e.inTx, clients),
			e.completeSide("complete_durable_only", tplDurableOnly, e.afterCommit, clients),
		},
		report: func(s []*benchSide) []scenarioResult {
			return []scenarioResult{
				throughputRow(ac, clients, s[0].summary(), s[2].summary(), tg),
				throughputRow(it, clients, s[1].summary(), s[2].summary(), tg),
			}
		},
	}
}

// consumerGroup measures the stepevents durable consumer against a bare
// pgmq.read + pgmq.delete loop with the same batch size, one worker each,
// on a queue filled before the clock starts.
func (e *benchEnv) consumerGroup() benchGroup {
	const row = "durable_consumer/b10"
	fill := func(ctx context.Context, n int) ([]uuid.UUID, error) {
		if err := e.fillQueue(ctx, benchConsumeQ, n*consumerBatch); err != nil {
			return nil, err
		}
		return make([]uuid.UUID, n), nil
	}
	bare := &benchSide{
		name: "bare_pgmq_read_delete", unit: "messages", clients: 1, prepare: fill,
		op: func(ctx context.Context, _ uuid.UUID) (int, error) {
			rows, err := e.pool.Query(ctx, `SELECT msg_id, message FROM pgmq.read($1::text, 30, $2::integer)`,
				benchConsumeQ, consumerBatch)
			if err != nil {
				return 0, fmt.Errorf("error reading %s: %w", benchConsumeQ, err)
			}
			var ids []int64
			for rows.Next() {
				var id int64
				var msg []byte
				if err := rows.Scan(&id, &msg); err != nil {
					rows.Close()
					return 0, fmt.Errorf("error reading %s: %w", benchConsumeQ, err)
				}
				ids = append(ids, id)
			}
			if err := rows.Err(); err != nil {
				return 0, fmt.Errorf("error reading %s: %w", benchConsumeQ, err)
			}
			if len(ids) == 0 {
				return 0, nil
			}
			if _, err := e.pool.Exec(ctx, `SELECT pgmq.delete($1::text, $2::bigint[])`, benchConsumeQ, ids); err != nil {
				return 0, fmt.Errorf("error deleting from %s: %w", benchConsumeQ, err)
			}
			return len(ids), nil
		},
	}
	sub := &benchSide{name: "stepevents_consumer_process_once", unit: "messages", clients: 1, prepare: fill}
	var c *consumer.Consumer
	sub.op = func(ctx context.Context, _ uuid.UUID) (int, error) {
		if c == nil { // created on first use: benchGroups also runs without a database, to list names
			var err error
			if c, err = consumer.New(e.pool, consumer.Config{Namespace: benchConsumeNS, BatchSize: consumerBatch}); err != nil {
				return 0, fmt.Errorf("error creating the consumer: %w", err)
			}
		}
		res, err := c.ProcessOnce(ctx, func(context.Context, events.Event, consumer.Delivery) error { return nil })
		if err != nil {
			return 0, err
		}
		if res.Handled != res.Read {
			return 0, fmt.Errorf("consumer handled %d of %d messages read (result %+v)", res.Handled, res.Read, res)
		}
		return res.Handled, nil
	}
	return benchGroup{
		name: "durable consumer", rows: []string{row},
		sides: []*benchSide{sub, bare},
		report: func(s []*benchSide) []scenarioResult {
			return []scenarioResult{throughputRow(row, 1, s[0].summary(), s[1].summary(), targetConsumer)}
		},
	}
}
