package fault_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/eventstest"
)

// Settings of the randomized run. The environment overrides the seed (to
// replay a failure: its seed is in the test log) and the number of
// completions (fewer for a quick look; the default is the promise).
const (
	envSeed        = "STEPEVENTS_FAULT_SEED"
	envCompletions = "STEPEVENTS_FAULT_COMPLETIONS"

	defaultSeed        = 20261128
	defaultCompletions = 2000
	faultWorkers       = 4
	// killEvery is the mean number of acknowledged completions between two
	// backends terminated by the killer.
	killEvery = 8
	// runTimeout bounds the run, which takes 25 to 45 s with -race on 2
	// shared cores.
	runTimeout = 3 * time.Minute
)

// TestRandomizedFaultRun completes at least 2,000 steps (defaultCompletions)
// with several workers while faults hit them: a killer goroutine
// terminates random worker backends, and each attempt at recording a result
// may be interrupted by a terminated backend, a statement timeout, a panic
// or a cancelled context; handlers panic too. Then plain SQL
// (invariants.sql) checks that every committed step result has exactly its
// declared durable events, none twice, none orphaned, and that every
// transition history is consistent; and the run's own records check that
// nothing acknowledged is lost and nothing rolled back was ever seen.
//
// The seed (logged; STEPEVENTS_FAULT_SEED replays it) fixes every random
// choice of the workers and the killer. Which backend is alive when the
// killer strikes, and whether a randomly timed cancellation lands before
// or after the commit, depend on timing, so a replay makes the same choices
// but may not meet the same outcomes.
func TestRandomizedFaultRun(t *testing.T) {
	t.Parallel()
	seed := envUint(t, envSeed, defaultSeed)
	target := envUint(t, envCompletions, defaultCompletions)
	t.Logf("seed %d (%s=%d replays it), %d completions, %d workers", seed, envSeed, seed, target, faultWorkers)

	f := newFixture(t)
	_, capture := f.listen(t, f.pool)
	ctx, cancel := context.WithTimeout(f.ctx, runTimeout)
	defer cancel()

	run := &faultRun{target: int64(target)}
	workers := make([]*worker, faultWorkers)
	clients := make([]*events.Client, faultWorkers)
	for i := range workers {
		// synchronous_commit=off only changes what a crash of the server
		// could lose, and this run never crashes the server; it spares
		// every commit a WAL flush, which dominates on a slow disk.
		pool := f.newPool(t, fmt.Sprintf("fault-worker-%d", i), 2, "synchronous_commit", "off")
		mode := events.FastAfterCommit // half the workers each way
		if i%2 == 1 {
			mode = events.FastInTransaction
		}
		clients[i] = f.newClient(t, pool, mode)
		workers[i] = newWorker(i, seed, pool, f.pool, clients[i], run)
	}

	start := time.Now()
	killCtx, stopKiller := context.WithCancel(ctx)
	var kills int
	var killErr error
	var wg sync.WaitGroup
	killerRNG := rand.New(rand.NewPCG(seed, 1<<32)) // a stream no worker uses
	wg.Go(func() { kills, killErr = killBackends(killCtx, f.pool, killerRNG, run) })
	errs := make([]error, faultWorkers)
	var workersWG sync.WaitGroup
	for i, w := range workers {
		workersWG.Go(func() { errs[i] = w.work(ctx) })
	}
	workersWG.Wait()
	stopKiller()
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, killErr)

	// Send every released fast event, then make sure all have arrived.
	for _, c := range clients {
		cctx, ccancel := context.WithTimeout(f.ctx, waitTimeout)
		require.NoError(t, c.Close(cctx))
		ccancel()
	}
	f.sentinel(t, capture)

	counts, unexpected, rec := collect(workers, capture)
	t.Logf("%d acknowledged completions in %s (%.0f/s), %d backends killed, %d fast events received",
		len(rec.acked), elapsed.Round(time.Millisecond), float64(len(rec.acked))/elapsed.Seconds(), kills, len(rec.fast))
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		t.Logf("  %-40s %6d", k, counts[k])
	}
	require.Empty(t, unexpected, "errors or outcomes no injected fault explains")

	// Every kind of fault actually happened.
	require.Positive(t, kills, "backends killed")
	for fl := faultNone + 1; fl < numFaults; fl++ {
		require.Positive(t, counts["fault:"+fl.String()], "fault %s never injected", fl)
	}
	require.Positive(t, counts["handler_panic"])
	require.Positive(t, counts["release:ok"])
	require.Positive(t, counts["reset:ok"])
	for _, class := range []string{"connection", "statement_timeout", "cancelled", "panic"} {
		require.Positive(t, counts["record:"+class], "no completion failed with a %s error", class)
	}

	var committed int
	require.NoError(t, f.pool.QueryRow(f.ctx, `
		SELECT count(*) FROM stepevents.workflow_step_transitions
		WHERE from_state = 'in_progress' AND to_state IN ('complete', 'waiting_for_retry', 'error')`).Scan(&committed))
	t.Logf("%d committed completions (acknowledged or not)", committed)
	require.GreaterOrEqual(t, committed, int(target))
	require.GreaterOrEqual(t, committed, len(rec.acked))

	requireInvariants(t, f.ctx, f.pool)
	rec.check(t, f)
}

// collect merges what the workers counted and recorded, and the fast
// events the capture received (sentinels excluded).
func collect(workers []*worker, capture *eventstest.FastEventCapture) (map[string]int, []string, *runRecords) {
	counts := map[string]int{}
	var unexpected []string
	rec := &runRecords{}
	for _, w := range workers {
		for k, v := range w.counts {
			counts[k] += v
		}
		unexpected = append(unexpected, w.unexpected...)
		rec.acked = append(rec.acked, w.acked...)
		rec.aborted = append(rec.aborted, w.aborted...)
	}
	for _, ev := range capture.Events() {
		if !strings.HasPrefix(ev.EventName, sentinelPrefix) {
			rec.fast = append(rec.fast, ev)
		}
	}
	return counts, unexpected, rec
}

func envUint(t *testing.T, name string, def uint64) uint64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err, "%s must be a non-negative integer", name)
	return v
}
