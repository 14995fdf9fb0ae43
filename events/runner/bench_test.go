package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/runner"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/test/testdb"
)

// benchTemplate is one step that publishes one durable event on success:
// a recording sends it to pgmq in the step's transaction.
const benchTemplate = `name: runner_bench
namespace_name: runner_bench
version: 1.0.0
steps:
  - name: work
    handler:
      callable: bench.work
    publishes_events:
      - name: work.done
        description: the work is done
        condition: success
        delivery_mode: durable
`

// BenchmarkRunnerRecords runs b.N one-step tasks through a runner with a
// handler that returns at once, so what is measured is claiming and
// recording: steps per second through 8 workers, each step's result and
// durable event committed in one transaction.
func BenchmarkRunnerRecords(b *testing.B) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(b))
	require.NoError(b, err)
	const workers = 8
	cfg.MaxConns = workers + 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	client, err := events.NewClient(ctx, pool, &events.Config{})
	require.NoError(b, err)
	b.Cleanup(func() { _ = client.Close(context.Background()) })
	tpl, err := template.Load("runner_bench.yaml", []byte(benchTemplate))
	require.NoError(b, err)
	require.NoError(b, client.ApplyTemplate(ctx, tpl))

	ids := make([]uuid.UUID, b.N)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	_, err = pool.Exec(ctx, `SELECT stepevents.create_task('runner_bench', 'runner_bench', NULL, '{}', u, NULL)
		FROM unnest($1::uuid[]) AS u`, ids)
	require.NoError(b, err)

	r, err := runner.New(client, pool, runner.Config{Workers: workers, PollInterval: time.Millisecond,
		RecoverInterval: -1, Handlers: map[string]runner.HandlerFunc{
			"bench.work": func(context.Context, events.Step, events.Task) (json.RawMessage, error) {
				return json.RawMessage(`{"ok":true}`), nil
			}}})
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	deadline := time.Now().Add(5 * time.Minute)
	for r.Stats().Completed < uint64(b.N) {
		select {
		case err := <-done:
			b.Fatalf("the runner stopped before finishing: %v (stats %+v)", err, r.Stats())
		default:
		}
		if st := r.Stats(); st.RecordErrors+st.Superseded+st.ClaimErrors > 0 || time.Now().After(deadline) {
			b.Fatalf("the runner did not record every step in time: stats %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	require.NoError(b, <-done)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
	var queued int
	require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) FROM pgmq.q_runner_bench_domain_events`).Scan(&queued))
	require.Equal(b, b.N, queued, fmt.Sprintf("one durable event per step (stats %+v)", r.Stats()))
}

// BenchmarkClaimReadySteps claims one step at a time (stepevents.
// claim_ready_steps, as each runner worker does) with a backlog of pending
// steps ahead of it: the time per claim must not grow with the backlog.
// behind_failures puts 15,000 pending steps of 5,000 failed tasks (each
// behind a step in error) ahead of the claimable ones: they stay pending
// until an operator acts, and a claim must not read them (migration 00018).
func BenchmarkClaimReadySteps(b *testing.B) {
	for _, bc := range []struct {
		name            string
		backlog, failed int
	}{
		{"backlog=1000", 1_000, 0},
		{"backlog=10000", 10_000, 0},
		{"behind_failures=15000", 0, 5_000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			pool := testdb.New(b)
			bench, err := template.Load("runner_bench.yaml", []byte(benchTemplate))
			require.NoError(b, err)
			diamond, err := template.LoadFile(diamondPath)
			require.NoError(b, err)
			for _, tpl := range []*template.Template{bench, diamond} {
				require.NoError(b, events.ApplyTemplate(ctx, pool, tpl))
			}
			_, err = pool.Exec(ctx, `SELECT stepevents.create_task('diamond', 'diamond', NULL, '{}',
				stepevents.uuid_v7(), NULL) FROM generate_series(1, $1)`, bc.failed)
			require.NoError(b, err)
			_, err = pool.Exec(ctx, `SELECT stepevents.fail_step((stepevents.start_step(step_uuid)).step_uuid,
				'{"message": "boom"}', true) FROM stepevents.workflow_steps WHERE name = 'a'`)
			require.NoError(b, err)
			_, err = pool.Exec(ctx, `SELECT stepevents.create_task('runner_bench', 'runner_bench', NULL, '{}',
				stepevents.uuid_v7(), NULL) FROM generate_series(1, $1)`, bc.backlog+b.N)
			require.NoError(b, err)
			b.ResetTimer()
			for range b.N {
				var step uuid.UUID
				require.NoError(b, pool.QueryRow(ctx,
					`SELECT step_uuid FROM stepevents.claim_ready_steps(1, ARRAY['bench.work'])`).Scan(&step))
			}
		})
	}
}
