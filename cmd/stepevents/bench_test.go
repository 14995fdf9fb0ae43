package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/test/testdb"
)

// benchScenarios are the rows issue 6 asks for; a smoke run must report
// every one of them.
var benchScenarios = []string{
	"publishing_overhead/c1", "publishing_overhead/c8",
	"publishing_overhead/durable_part/c1", "publishing_overhead/durable_part/c8",
	"publishing_overhead/durable_by_hand/c1", "publishing_overhead/durable_by_hand/c8",
	"publishing_overhead/durable_part_vs_by_hand/c1", "publishing_overhead/durable_part_vs_by_hand/c8",
	"physical_limit/c1", "physical_limit/c8",
	"durable_vs_pgmq/c1", "durable_vs_pgmq/c8",
	"fast_latency/200", "fast_latency/1000", "fast_latency/in_tx/1000", "fast_latency/1000x4", "fast_latency/max",
	"concurrency_sweep/after_commit/c1", "concurrency_sweep/in_tx/c1",
	"concurrency_sweep/after_commit/c2", "concurrency_sweep/in_tx/c2",
	"concurrency_sweep/after_commit/c4", "concurrency_sweep/in_tx/c4",
	"concurrency_sweep/after_commit/c8", "concurrency_sweep/in_tx/c8",
	"concurrency_sweep/after_commit/c16", "concurrency_sweep/in_tx/c16",
	"concurrency_sweep/after_commit/c32", "concurrency_sweep/in_tx/c32",
	"durable_consumer/b10",
}

// TestBenchShortJSON runs the smoke bench against the test server (it makes
// and drops its own scratch database there) and checks the report's shape:
// every scenario, positive throughput on both sides, percentiles in order.
// Figures are not asserted: they belong to BENCHMARKS.md, not to a test.
func TestBenchShortJSON(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	var stdout, stderr bytes.Buffer
	// --short as CI runs it, with shorter sides: the race detector slows
	// everything down and only the report's shape is checked here.
	code := run(context.Background(), []string{"bench", "--short", "--duration", "150ms", "--json",
		"--database-url", url}, &stdout, &stderr)
	require.Equal(t, exitOK, code, "stderr: %s", stderr.String())

	var rep benchReport
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), "stdout: %s", stdout.String())
	require.True(t, rep.Short)
	require.Positive(t, rep.Machine.CPUs)
	require.NotEmpty(t, rep.Machine.Postgres)
	require.Contains(t, rep.Machine.Settings, "synchronous_commit")

	got := map[string]scenarioResult{}
	for _, r := range rep.Scenarios {
		got[r.Name] = r
	}
	for _, name := range benchScenarios {
		r, ok := got[name]
		require.True(t, ok, "scenario %s missing from %v", name, keys(got))
		for _, s := range []sideSummary{r.Subject, r.Baseline} {
			require.NotEmpty(t, s.Name, name)
			require.Positive(t, s.Throughput, "%s: %s", name, s.Name)
			require.Positive(t, s.Latency.Count, "%s: %s", name, s.Name)
			require.LessOrEqual(t, s.Latency.P50, s.Latency.P99, "%s: %s", name, s.Name)
			require.LessOrEqual(t, s.Latency.P99, s.Latency.Max, "%s: %s", name, s.Name)
		}
		require.Positive(t, r.Ratio, name)
		if r.Subject.Unit == "completions" {
			// Every completion commits a state change: the WAL meter
			// must see it (other tests' WAL can only add to it).
			require.Positive(t, r.Subject.WALBytesPerOp, "%s: WAL per completion", name)
		}
		if r.Target != nil {
			require.NotNil(t, r.TargetMet, name)
		}
	}
	sides := 0
	for _, g := range (&benchEnv{}).benchGroups() {
		sides += len(g.sides)
	}
	require.Contains(t, stderr.String(), fmt.Sprintf("(%d/%d)", sides, sides), "the progress bar goes to stderr")
}

// TestBenchScenarioFilter runs one scenario only, in the table form.
func TestBenchScenarioFilter(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "--short", "--scenarios", "physical_limit/c1",
		"--sample-waits", "--database-url", url}, &stdout, &stderr)
	require.Equal(t, exitOK, code, "stderr: %s", stderr.String())
	require.Contains(t, stdout.String(), "physical_limit/c1")
	require.Contains(t, stdout.String(), "waits physical_limit/c1 bare_insert_commit: ", "--sample-waits reports waits")
	require.NotContains(t, stdout.String(), "publishing_overhead/c1", "rows outside the filter are not printed")
	require.NotContains(t, stdout.String(), "fast_latency")
}

// TestBenchUnknownScenario: an unknown --scenarios value is a usage error
// (exit 2) before any database is touched, and the message lists the
// scenarios.
func TestBenchUnknownScenario(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "--scenarios", "nope"}, &stdout, &stderr)
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr.String(), "no scenario matches --scenarios nope")
	require.Contains(t, stderr.String(), "durable_consumer/b10")
}

// TestMeasureOpenLoopRate checks the runner's pacing: an open-loop side runs
// about rate × duration operations, and its throughput is that rate.
func TestMeasureOpenLoopRate(t *testing.T) {
	t.Parallel()
	s := &benchSide{name: "noop", unit: "events", clients: 4, rate: 500,
		op: func(context.Context, uuid.UUID) (int, error) { return 1, nil }}
	r, err := measure(context.Background(), s, 400*time.Millisecond, meters{})
	require.NoError(t, err)
	require.InDelta(t, 200, r.ops, 10, "500/s for 400ms")
	require.GreaterOrEqual(t, r.elapsed, 400*time.Millisecond)
	require.EqualValues(t, r.ops, r.hist.TotalCount())
}

// TestMeasurePreparesInRounds checks that a closed-loop side with prepared
// items uses each item once and keeps preparing until its time is up.
func TestMeasurePreparesInRounds(t *testing.T) {
	t.Parallel()
	prepared, used := 0, make(chan uuid.UUID, 1<<20)
	s := &benchSide{name: "items", unit: "completions", clients: 2,
		prepare: func(_ context.Context, n int) ([]uuid.UUID, error) {
			prepared += n
			out := make([]uuid.UUID, n)
			for i := range out {
				out[i] = uuid.New()
			}
			return out, nil
		},
		op: func(_ context.Context, id uuid.UUID) (int, error) {
			used <- id
			time.Sleep(200 * time.Microsecond) // a stand-in for a round trip
			return 1, nil
		}}
	r, err := measure(context.Background(), s, 200*time.Millisecond, meters{})
	require.NoError(t, err)
	close(used)
	seen := map[uuid.UUID]bool{}
	for id := range used {
		require.False(t, seen[id], "item %s used twice", id)
		seen[id] = true
	}
	require.EqualValues(t, len(seen), r.ops)
	require.Greater(t, prepared, 32, "more than the first round was prepared")
	require.GreaterOrEqual(t, r.elapsed, 190*time.Millisecond)
}

// TestDeliveryRecorder checks commit → handler accounting: delivered ids
// are timed, missing ones counted lost, warm-up slices discarded.
func TestDeliveryRecorder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newDeliveryRecorder()
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	r.expect(a, time.Now())
	require.True(t, r.deliver(a))
	r.settle(ctx, time.Second, false) // warm-up: discarded
	require.Zero(t, r.total.TotalCount())

	r.expect(b, time.Now())
	r.expect(c, time.Now())
	require.True(t, r.deliver(b))
	r.settle(ctx, 100*time.Millisecond, true)
	require.EqualValues(t, 1, r.total.TotalCount())
	require.EqualValues(t, 1, r.lostTotal, "c never arrived")
	require.False(t, r.deliver(c), "a late delivery after settle is not counted")
}

func keys(m map[string]scenarioResult) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
