package main

import (
	"context"
	"fmt"
	"math"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/google/uuid"
)

// maxPrepareBatch bounds how many work items one preparation round makes,
// so a fast side never spends minutes preparing before it is measured.
const maxPrepareBatch = 40_000

// benchSide is one thing measured: an operation run by clients goroutines,
// closed loop (as fast as they can) or open loop at a fixed total rate.
type benchSide struct {
	name    string
	group   string // the benchGroup measuring it (set by runGroup), for profile labels
	unit    string // what op's units count: completions, transactions, messages, events
	clients int
	// rate, when > 0, paces the operations at rate per second in total
	// (open loop); otherwise every client runs the next operation at once.
	rate float64
	// prepare makes n work items ready before the clock starts (ready and
	// claimed steps, queued messages); nil when op needs none.
	prepare func(ctx context.Context, n int) ([]uuid.UUID, error)
	// op runs one timed operation on item (uuid.Nil without prepare) and
	// returns how many units it handled.
	op func(ctx context.Context, item uuid.UUID) (units int, err error)
	// delivery, when set, records the side's commit → handler latency; the
	// runner waits for every expected delivery after each slice.
	delivery *deliveryRecorder

	// Totals over the measured slices.
	ops, units int64
	elapsed    time.Duration
	hist       *hdrhistogram.Histogram
	walBytes   int64          // WAL written while the side ran (see walMeter)
	waits      map[string]int // --sample-waits: session samples by activity
	perSec     float64        // operations per second seen so far, to size preparation rounds
}

// sliceResult is what one measurement slice of a side did.
type sliceResult struct {
	ops, units int64
	elapsed    time.Duration
	hist       *hdrhistogram.Histogram
	walBytes   int64
}

// meters are what measure reads around each round besides the clock; a
// nil meter is skipped.
type meters struct {
	waits *waitSampler
	wal   *walMeter
}

// measure runs s for d of measured time. Work items are prepared in rounds
// outside the clock: the side's first round ever is small, later ones are
// sized from the rate seen so far, so the side runs close to d without
// preparing far more than it uses.
// With a wait sampler, each round's session activity (not the preparation's)
// is added to s.waits; with a WAL meter, the round's WAL goes into the result.
func measure(ctx context.Context, s *benchSide, d time.Duration, m meters) (sliceResult, error) {
	w := m.waits
	res := sliceResult{hist: newHist()}
	remaining := d
	for remaining > 2*time.Millisecond {
		var items []uuid.UUID
		if s.prepare != nil {
			var n int
			switch {
			case s.rate > 0:
				n = int(s.rate*remaining.Seconds()*1.05) + s.clients + 1
			case res.ops == 0 && s.perSec == 0:
				n = max(32, s.clients*8)
			default:
				perSec := s.perSec
				if res.ops > 0 {
					perSec = float64(res.ops) / res.elapsed.Seconds()
				}
				n = int(perSec*remaining.Seconds()*1.15) + 2*s.clients
			}
			var err error
			if items, err = s.prepare(ctx, min(n, maxPrepareBatch)); err != nil {
				return res, fmt.Errorf("error preparing %s: %w", s.name, err)
			}
		}
		if w != nil {
			w.reset()
		}
		var walStart int64
		if m.wal != nil {
			var err error
			if walStart, err = m.wal.position(ctx); err != nil {
				return res, err
			}
		}
		r, err := runRound(ctx, s, items, remaining)
		if err != nil {
			return res, err
		}
		if m.wal != nil {
			walEnd, err := m.wal.position(ctx)
			if err != nil {
				return res, err
			}
			res.walBytes += walEnd - walStart
		}
		if w != nil {
			if s.waits == nil {
				s.waits = map[string]int{}
			}
			w.snapshot(s.waits)
		}
		res.ops += r.ops
		res.units += r.units
		res.elapsed += r.elapsed
		res.hist.Merge(r.hist)
		remaining -= r.elapsed
		if r.elapsed > 0 {
			s.perSec = float64(res.ops) / res.elapsed.Seconds()
		}
		if r.ops == 0 {
			// A round can start too late to run anything (a busy machine
			// schedules its workers after the deadline); that only ends
			// the slice. A side that never completes an operation is broken.
			if res.ops > 0 || r.elapsed < 100*time.Millisecond {
				break
			}
			return res, fmt.Errorf("%s made no progress in %s", s.name, r.elapsed)
		}
		if s.rate > 0 {
			break // one round: the schedule is continuous
		}
	}
	return res, nil
}

// runRound runs s until limit has passed or items are used up. Each client
// keeps its own histogram (hdrhistogram is not safe for concurrent use);
// they are merged at the end. The first error stops the round.
func runRound(parent context.Context, s *benchSide, items []uuid.UUID, limit time.Duration) (sliceResult, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		next     atomic.Int64
		ops      atomic.Int64
		units    atomic.Int64
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	hists := make([]*hdrhistogram.Histogram, s.clients)
	start := time.Now()
	deadline := start.Add(limit)
	for w := range s.clients {
		hists[w] = newHist()
		wg.Add(1)
		go func(h *hdrhistogram.Histogram) {
			defer wg.Done()
			// The side's name labels its CPU samples (--cpuprofile):
			// go tool pprof -tagfocus side=complete_durable_only …
			// A side in several groups (durable-only is) is told apart
			// by its group: -tagfocus 'group=completion c8'.
			pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("side", s.name, "group", s.group)))
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if items != nil && i >= int64(len(items)) {
					return
				}
				if s.rate > 0 {
					at := start.Add(time.Duration(float64(i) / s.rate * float64(time.Second)))
					if !at.Before(deadline) {
						return
					}
					if !sleepUntil(ctx, at) {
						return
					}
				} else if !time.Now().Before(deadline) {
					return
				}
				item := uuid.Nil
				if items != nil {
					item = items[i]
				}
				t0 := time.Now()
				n, err := s.op(ctx, item)
				lat := time.Since(t0)
				if err != nil {
					mu.Lock()
					if firstErr == nil && ctx.Err() == nil {
						firstErr = fmt.Errorf("%s: %w", s.name, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				recordLatency(h, lat)
				ops.Add(1)
				units.Add(int64(n))
			}
		}(hists[w])
	}
	wg.Wait()
	res := sliceResult{ops: ops.Load(), units: units.Load(), elapsed: time.Since(start), hist: newHist()}
	if s.rate > 0 {
		// An open-loop side is measured over its schedule, or longer when
		// it fell behind: then its throughput shows the rate it reached.
		res.elapsed = max(limit, res.elapsed)
	}
	for _, h := range hists {
		res.hist.Merge(h)
	}
	if firstErr != nil {
		return res, firstErr
	}
	if err := parent.Err(); err != nil {
		return res, fmt.Errorf("%s interrupted: %w", s.name, err)
	}
	return res, nil
}

// sleepUntil waits until t or ctx ends; it reports whether t was reached.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// summary folds a side's measured slices into its report form.
func (s *benchSide) summary() sideSummary {
	sec := s.elapsed.Seconds()
	out := sideSummary{Name: s.name, Unit: s.unit, Ops: s.ops, Units: s.units, Seconds: round3(sec),
		TargetRate: s.rate}
	if sec > 0 {
		out.Throughput = round3(float64(s.units) / sec)
	}
	opLat := summarize(s.hist)
	out.Latency = opLat
	if s.delivery != nil {
		out.Latency = summarize(s.delivery.total)
		out.OpLatency = &opLat
		out.Lost = s.delivery.lostTotal
	}
	out.Waits = topWaits(s.waits, 8)
	if s.ops > 0 {
		out.WALBytesPerOp = math.Round(float64(s.walBytes) / float64(s.ops))
	}
	return out
}

// benchGroup is a set of sides measured side by side: warmed up, then run
// in interleaved slices (the order rotating each slice) so that drift in
// the machine — autovacuum, checkpoints, other load, a growing table —
// lands on every side alike. rows turns the sides into report rows.
type benchGroup struct {
	name  string
	rows  []string // the row names it produces, for --scenarios
	sides []*benchSide
	// setup runs before the sides and returns their teardown; nil when none.
	setup  func(ctx context.Context) (func(context.Context) error, error)
	report func(sides []*benchSide) []scenarioResult
}

// deliveryRecorder measures commit → handler latency: an operation calls
// expect with each event id just before it commits, the subscriber calls
// deliver on receipt. Safe for concurrent use.
type deliveryRecorder struct {
	mu        sync.Mutex
	pending   map[uuid.UUID]time.Time
	hist      *hdrhistogram.Histogram // current slice
	total     *hdrhistogram.Histogram // measured slices
	lostTotal int64
	signal    chan struct{}
}

func newDeliveryRecorder() *deliveryRecorder {
	return &deliveryRecorder{pending: map[uuid.UUID]time.Time{}, hist: newHist(), total: newHist(),
		signal: make(chan struct{}, 1)}
}

// expect registers an id whose delivery is to be timed from now.
func (r *deliveryRecorder) expect(id uuid.UUID, at time.Time) {
	r.mu.Lock()
	r.pending[id] = at
	r.mu.Unlock()
}

// deliver records the latency of id's delivery; it reports whether id was
// expected (by this recorder).
func (r *deliveryRecorder) deliver(id uuid.UUID) bool { return r.deliverAt(id, time.Now()) }

// recordAt records a latency measured elsewhere (see arrivals).
func (r *deliveryRecorder) recordAt(d time.Duration) {
	r.mu.Lock()
	recordLatency(r.hist, d)
	r.mu.Unlock()
}

// deliverAt is deliver for a delivery received at now.
func (r *deliveryRecorder) deliverAt(id uuid.UUID, now time.Time) bool {
	r.mu.Lock()
	at, ok := r.pending[id]
	if ok {
		delete(r.pending, id)
		recordLatency(r.hist, now.Sub(at))
	}
	empty := len(r.pending) == 0
	r.mu.Unlock()
	if ok && empty {
		select {
		case r.signal <- struct{}{}:
		default:
		}
	}
	return ok
}

// settle waits (up to timeout) for every expected delivery, counts the
// missing ones as lost, and folds the slice into the totals when keep is
// set (a warm-up slice is discarded).
func (r *deliveryRecorder) settle(ctx context.Context, timeout time.Duration, keep bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		n := len(r.pending)
		r.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-r.signal:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		break
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if keep {
		r.total.Merge(r.hist)
		r.lostTotal += int64(len(r.pending))
	}
	clear(r.pending)
	r.hist.Reset()
}
