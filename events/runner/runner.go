package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events"
)

// Runner claims ready steps and runs their handlers with a fixed number of
// workers. Create it with New and start it with Run. See the package
// documentation for what it guarantees when it stops or a worker is lost.
type Runner struct {
	client   *events.Client
	pool     *pgxpool.Pool
	cfg      Config
	handlers []string // sorted handler names, the claim filter
	logger   *slog.Logger
	queries  *db.Queries
	stats    counters
	running  atomic.Bool

	// wake holds tokens for idle workers: a worker that claimed a step
	// leaves one, since more steps may be ready, and an idle worker takes it
	// and claims at once instead of waiting for its next poll.
	wake chan struct{}

	mu       sync.Mutex // guards inflight
	inflight map[*job]struct{}
}

// New returns a Runner that records outcomes with client and claims steps
// through pool (the database client writes to). It fails when cfg has no
// handlers, a nil handler or a negative setting.
func New(client *events.Client, pool *pgxpool.Pool, cfg Config) (*Runner, error) {
	if client == nil || pool == nil {
		return nil, fmt.Errorf("runner: client and pool are required: %w", events.ErrInvalidInput)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Runner{client: client, pool: pool, cfg: cfg, logger: cfg.Logger, queries: db.New(),
		handlers: slices.Sorted(maps.Keys(cfg.Handlers)), wake: make(chan struct{}, cfg.Workers),
		inflight: map[*job]struct{}{}}
	if r.logger == nil {
		r.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return r, nil
}

// Stats returns a snapshot of the runner's counters.
func (r *Runner) Stats() Stats {
	s := r.stats.snapshot()
	r.mu.Lock()
	s.InFlight = len(r.inflight)
	r.mu.Unlock()
	return s
}

// Run claims and runs steps until ctx is cancelled, then stops as the
// package documentation describes and returns. It returns nil after a clean
// stop, or an error joining the releases that failed (those steps stay
// in_progress until RecoverStaleSteps fails them). Claim and recording
// errors are logged and counted, and the runner carries on. A Runner runs
// once at a time: a concurrent Run returns ErrAlreadyRunning. A pool whose
// connections default to an isolation level other than READ COMMITTED is
// refused at once (events.ErrInvalidInput).
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("runner: %w", ErrAlreadyRunning)
	}
	defer r.running.Store(false)
	if err := r.checkIsolation(ctx); err != nil {
		return err
	}
	r.logger.Info("stepevents runner: started", slog.Int("workers", r.cfg.Workers),
		slog.Any("handlers", r.handlers))

	var recoverWG sync.WaitGroup
	if r.cfg.RecoverInterval > 0 {
		recoverWG.Go(func() { r.recoverLoop(ctx) })
	}
	// base outlives ctx: handlers and recordings end by their own deadlines
	// or by the shutdown below, never because ctx was cancelled.
	base := context.WithoutCancel(ctx)
	var workers sync.WaitGroup
	for range r.cfg.Workers {
		workers.Go(func() { r.workerLoop(ctx, base) })
	}
	<-ctx.Done()
	err := r.shutdown(&workers)
	recoverWG.Wait()
	r.logger.Info("stepevents runner: stopped", slog.Any("stats", r.Stats()))
	return err
}

// workerLoop claims one step at a time and runs it, until ctx ends. With
// nothing ready it waits PollInterval, or less when another worker leaves a
// wake token.
func (r *Runner) workerLoop(ctx, base context.Context) {
	timer := time.NewTimer(r.cfg.PollInterval)
	defer timer.Stop()
	for ctx.Err() == nil {
		if j := r.claim(base); j != nil {
			if ctx.Err() != nil {
				// Claimed while stopping (perhaps a step shutdown just
				// released): give it back rather than start it.
				r.abandon(j, "runner stopped: claimed while stopping")
				return
			}
			select {
			case r.wake <- struct{}{}:
			default:
			}
			r.work(j)
			continue
		}
		timer.Reset(r.cfg.PollInterval)
		select {
		case <-r.wake:
		case <-timer.C:
		case <-ctx.Done():
		}
	}
}

// shutdown waits up to ShutdownGrace for the workers to finish their
// current step; then it takes the steps of the handlers still running away
// from them (released, their later outcome discarded), cancels their ctx
// and waits for them to return.
func (r *Runner) shutdown(workers *sync.WaitGroup) error {
	finished := make(chan struct{})
	go func() {
		workers.Wait()
		close(finished)
	}()
	if n := r.Stats().InFlight; n > 0 {
		r.logger.Info("stepevents runner: stopping, waiting for in-flight handlers",
			slog.Int("in_flight", n), slog.Duration("grace", r.cfg.ShutdownGrace))
	}
	grace := time.NewTimer(r.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-finished:
		return nil
	case <-grace.C:
	}
	r.mu.Lock()
	var abandoned []*job
	for j := range r.inflight {
		if j.state.CompareAndSwap(jobRunning, jobAbandoned) {
			abandoned = append(abandoned, j)
		}
	}
	r.mu.Unlock()
	var errs []error
	for _, j := range abandoned {
		j.cancel()
		if err := r.release(j, "runner stopped: handler did not finish within the shutdown grace period"); err != nil {
			errs = append(errs, err)
		}
	}
	<-finished
	return errors.Join(errs...)
}

// recoverLoop runs RecoverStaleSteps every RecoverInterval until ctx ends.
func (r *Runner) recoverLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.RecoverInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.RecoverStaleSteps(ctx); err != nil && ctx.Err() == nil {
				r.logger.Error("stepevents runner: error recovering stale steps", slog.String("err", err.Error()))
			}
		}
	}
}

// timeoutFor is a step's deadline: its timeout_seconds, else StepTimeout.
func (r *Runner) timeoutFor(s events.Step) time.Duration {
	if s.TimeoutSeconds > 0 {
		return time.Duration(s.TimeoutSeconds) * time.Second
	}
	return r.cfg.StepTimeout
}

// checkIsolation refuses a pool whose connections default to REPEATABLE
// READ or SERIALIZABLE: every claim would fail (stepevents' step
// operations refuse them) and the runner would only log and retry. When
// the level cannot be read (the database is down), it says nothing: Run
// goes on and logs the claim errors until the database is back.
func (r *Runner) checkIsolation(ctx context.Context) error {
	var level string
	if err := r.pool.QueryRow(ctx, `SELECT current_setting('transaction_isolation')`).Scan(&level); err != nil {
		r.logger.Warn("stepevents runner: could not read the connections' isolation level",
			slog.String("err", err.Error()))
		return nil
	}
	if level != "read committed" && level != "read uncommitted" {
		return fmt.Errorf("runner: the pool's connections default to %s isolation; step operations need read committed "+
			"(ALTER ROLE … SET default_transaction_isolation = 'read committed', or set it in the pool's "+
			"RuntimeParams where no connection pooler sits between): %w", strings.ToUpper(level), events.ErrInvalidInput)
	}
	return nil
}
