package fault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

// fault is what a worker does to one attempt at recording a step result.
type fault int

const (
	faultNone fault = iota
	// faultTerminate terminates the transaction's backend after the result
	// is recorded and the events sent, before commit.
	faultTerminate
	// faultStatementTimeout sets a small statement_timeout and, after the
	// result is recorded, runs a statement that outlasts it.
	faultStatementTimeout
	// faultTinyTimeout sets statement_timeout to 1 ms before recording: the
	// completion may or may not survive it.
	faultTinyTimeout
	// faultCancelBeforeCommit cancels the context after the result is
	// recorded: the commit is never sent.
	faultCancelBeforeCommit
	// faultCancelRandom cancels the context at a random moment: before,
	// during or after the commit.
	faultCancelRandom
	// faultPanicInTx panics inside the transaction after the result is
	// recorded, as a handler running in the step transaction might.
	faultPanicInTx
	numFaults
)

var faultNames = [numFaults]string{"none", "terminate", "statement_timeout", "tiny_timeout",
	"cancel_before_commit", "cancel_random", "panic_in_tx"}

func (f fault) String() string { return faultNames[f] }

// aborts reports the faults that must roll the completion back: it never
// commits, so none of its events may ever be seen.
func (f fault) aborts() bool {
	return f == faultTerminate || f == faultStatementTimeout || f == faultCancelBeforeCommit || f == faultPanicInTx
}

// pickFault draws a fault: 70 % of attempts run clean, 5 % get each fault.
func pickFault(rng *rand.Rand) fault {
	x := rng.IntN(100)
	if x < 70 {
		return faultNone
	}
	return fault(1 + (x-70)/5)
}

// outcome is what a handler decided: a result, or a failure.
type outcome struct {
	result  json.RawMessage
	failure *events.Failure
}

// handle is the step handler of the randomized run: it mostly succeeds,
// sometimes fails (retryably or permanently) and sometimes panics.
func handle(rng *rand.Rand, step, orderID string) outcome {
	switch x := rng.IntN(100); {
	case x < 74:
		return outcome{result: resultFor(step, orderID)}
	case x < 88:
		return outcome{failure: &events.Failure{Message: "upstream timed out", Type: "Timeout", Code: "E_TIMEOUT",
			RetryAfter: time.Millisecond}}
	case x < 94:
		return outcome{failure: &events.Failure{Message: "card declined", Type: "Declined", Code: "E_DECLINED",
			Permanent: true}}
	default:
		panic(fmt.Sprintf("handler of %s panicked", step))
	}
}

// errPanicked marks a panic recovered while recording a result.
var errPanicked = errors.New("panic while recording a step result")

// Limits that turn a stuck worker into a test failure instead of a hang.
const (
	maxTries          = 25  // per database operation
	maxStepIterations = 200 // per step
	maxResets         = 2   // per step
)

// acked is a completion whose InTx returned nil: it committed.
type acked struct {
	step    uuid.UUID
	attempt int
	state   string
	durable []uuid.UUID // event ids of its durable and broadcast events
}

// faultRun is what the workers of one randomized run share.
type faultRun struct {
	target int64        // acknowledged completions to reach
	acked  atomic.Int64 // acknowledged completions so far
}

// worker drives fixture orders through their steps on its own pool and
// client, injecting faults. Its fields are its own until work returns.
type worker struct {
	id     int
	rng    *rand.Rand
	pool   *pgxpool.Pool // application_name fault-worker-<id>: a target of the backend killer
	admin  *pgxpool.Pool // terminates this worker's own backend (faultTerminate)
	client *events.Client
	run    *faultRun

	counts     map[string]int // faults injected, errors by class, actions taken
	acked      []acked
	aborted    []uuid.UUID // event ids of completions that must never commit
	unexpected []string    // errors or outcomes no fault explains
}

func newWorker(id int, seed uint64, pool, admin *pgxpool.Pool, client *events.Client, run *faultRun) *worker {
	return &worker{id: id, rng: rand.New(rand.NewPCG(seed, uint64(id))), pool: pool, admin: admin, client: client,
		run: run, counts: map[string]int{}}
}

// work processes new orders until the run has its completions.
func (w *worker) work(ctx context.Context) error {
	for w.run.acked.Load() < w.run.target {
		o, err := retry(ctx, w, "creating an order", func() (order, error) { return newOrder(ctx, w.pool) })
		if err != nil {
			return err
		}
		w.counts["orders"]++
		for _, name := range stepOrder {
			done, err := w.driveStep(ctx, o, name)
			if err != nil {
				return fmt.Errorf("worker %d, order %s, step %s: %w", w.id, o.task, name, err)
			}
			if !done {
				break // the step failed for good: the order stops here
			}
		}
	}
	return nil
}

// driveStep brings a step to complete (true) or to an error it leaves
// (false). After a failed action it re-reads the step and acts on what the
// database says, never on what it hoped happened (the action may have
// committed after all); after a successful one it goes on from the step
// the action returned.
func (w *worker) driveStep(ctx context.Context, o order, name string) (bool, error) {
	id := o.steps[name]
	fresh := false           // in progress because this worker just started it
	var owed *events.Failure // a failure to record instead of running the handler again
	var known *events.Step   // the step as the last successful action returned it
	resets := 0
	for range maxStepIterations {
		st, err := w.current(ctx, id, known)
		if err != nil {
			return false, err
		}
		known = nil
		switch st.State {
		case "complete":
			return true, nil
		case "error":
			if resets >= maxResets || w.rng.IntN(2) == 0 {
				return false, nil
			}
			resets++
			s, err := events.ResetStep(ctx, w.pool, id, "fault run: try the order again")
			w.note("reset", err)
			known = okStep(s, err)
		case "pending", "waiting_for_retry":
			if err := waitUntil(ctx, st.NextRetryAt); err != nil {
				return false, err
			}
			s, err := events.StartStep(ctx, w.pool, id)
			w.note("start", err)
			fresh = err == nil
			known = okStep(s, err)
		case "in_progress":
			if !fresh && w.rng.IntN(4) == 0 {
				// Left in progress by an interrupted completion: give it back,
				// as a supervisor does for a lost worker.
				s, err := events.ReleaseStep(ctx, w.pool, id, "fault run: worker lost")
				w.note("release", err)
				owed, known = nil, okStep(s, err)
				continue
			}
			fresh = false
			owed, known = w.attempt(ctx, o, name, id, owed)
		default:
			return false, fmt.Errorf("step %s is %s, which no worker action leads to", id, st.State)
		}
	}
	return false, fmt.Errorf("step %s made no progress in %d iterations", id, maxStepIterations)
}

// attempt runs the handler (unless a failure is owed from a panic) and
// records the outcome under a random fault. It returns the failure still
// owed (a panic inside the transaction is recorded as a failure next time)
// and, when the completion committed, the step it left.
func (w *worker) attempt(ctx context.Context, o order, name string, step uuid.UUID, owed *events.Failure) (*events.Failure, *events.Step) {
	out := outcome{failure: owed}
	if owed == nil {
		out = w.runHandler(name, o.id)
	}
	f := pickFault(w.rng)
	w.counts["fault:"+f.String()]++
	comp, err := w.record(ctx, step, out, f)
	if err == nil {
		if f.aborts() {
			w.unexpected = append(w.unexpected, fmt.Sprintf("fault %s did not abort the completion of step %s", f, step))
		}
		a := acked{step: step, attempt: comp.Step.Attempts, state: comp.Step.State}
		for _, p := range comp.Published {
			if p.Mode != template.DeliveryFast {
				a.durable = append(a.durable, p.EventID)
			}
		}
		w.acked = append(w.acked, a)
		w.run.acked.Add(1)
		return nil, &comp.Step
	}
	if f.aborts() && comp != nil {
		for _, p := range comp.Published {
			w.aborted = append(w.aborted, p.EventID)
		}
	}
	w.note("record", err)
	if errors.Is(err, errPanicked) {
		return &events.Failure{Message: err.Error(), Type: "panic", Code: "E_PANIC", RetryAfter: time.Millisecond}, nil
	}
	return out.failure, nil
}

// current returns the step as the last action returned it when that action
// succeeded, and otherwise reads it: after an error, only the database
// knows what happened.
func (w *worker) current(ctx context.Context, id uuid.UUID, known *events.Step) (events.Step, error) {
	if known != nil {
		return *known, nil
	}
	return retry(ctx, w, "reading a step", func() (events.Step, error) { return events.GetStep(ctx, w.pool, id) })
}

func okStep(s events.Step, err error) *events.Step {
	if err != nil {
		return nil
	}
	return &s
}

// runHandler calls handle and turns a panic into a failure, as a worker
// loop must: a panicking handler is a failed attempt, not a dead worker.
func (w *worker) runHandler(name, orderID string) (out outcome) {
	defer func() {
		if r := recover(); r != nil {
			w.counts["handler_panic"]++
			out = outcome{failure: &events.Failure{Message: fmt.Sprint(r), Type: "panic", Code: "E_PANIC",
				RetryAfter: time.Millisecond}}
		}
	}()
	return handle(w.rng, name, orderID)
}

// record completes or fails the step in a transaction of its own, with
// fault f injected. It returns the completion as CompleteStepTx/FailStepTx
// built it (also when the transaction then failed) and InTx's error.
func (w *worker) record(ctx context.Context, step uuid.UUID, out outcome, f fault) (comp *events.Completion, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f == faultCancelRandom {
		t := time.AfterFunc(time.Duration(w.rng.IntN(4000))*time.Microsecond, cancel)
		defer t.Stop()
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errPanicked, r)
		}
	}()
	err = w.client.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		switch f {
		case faultTinyTimeout:
			if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '1ms'`); err != nil {
				return fmt.Errorf("error setting statement_timeout: %w", err)
			}
		case faultStatementTimeout:
			if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '20ms'`); err != nil {
				return fmt.Errorf("error setting statement_timeout: %w", err)
			}
		}
		var err error
		if out.failure != nil {
			comp, err = w.client.FailStepTx(ctx, tx, step, *out.failure)
		} else {
			comp, err = w.client.CompleteStepTx(ctx, tx, step, out.result)
		}
		if err != nil {
			return err
		}
		switch f {
		case faultTerminate:
			return terminate(ctx, w.admin, tx.Conn().PgConn().PID())
		case faultStatementTimeout:
			_, err := tx.Exec(ctx, `SELECT pg_sleep(0.5)`)
			return err
		case faultCancelBeforeCommit:
			cancel()
		case faultPanicInTx:
			panic("handler panicked inside the step transaction")
		}
		return nil
	})
	return comp, err
}

// note counts what an action's error says about it; an error no injected
// fault explains is recorded as unexpected.
func (w *worker) note(action string, err error) {
	class := classify(err)
	w.counts[action+":"+class]++
	if class == "unexpected" {
		w.unexpected = append(w.unexpected, fmt.Sprintf("%s: %v", action, err))
	}
}

// classify names the cause of an error from a worker action.
func classify(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errPanicked):
		return "panic"
	case errors.As(err, &pgErr) && pgErr.Code == "57014":
		return "statement_timeout"
	case isConnectionError(err):
		return "connection"
	case errors.Is(err, context.Canceled) || pgconn.Timeout(err) ||
		strings.Contains(err.Error(), "context canceled") || strings.Contains(err.Error(), "conn closed"):
		return "cancelled"
	case errors.Is(err, events.ErrStepNotReady):
		return "not_ready"
	case errors.Is(err, events.ErrIllegalTransition):
		// An ambiguous commit: the connection died while COMMIT was in
		// flight, the worker read the step before the commit became
		// visible, and its second try found the step already recorded.
		// The invariants still prove no double recording happened.
		return "already_recorded"
	default:
		return "unexpected"
	}
}

// retry calls fn until it succeeds, maxTries times at most: any error may
// be a killed backend. It gives up at once when ctx ends.
func retry[T any](ctx context.Context, w *worker, what string, fn func() (T, error)) (T, error) {
	for i := 1; ; i++ {
		v, err := fn()
		if err == nil {
			return v, nil
		}
		w.note(what, err)
		if ctx.Err() != nil || i == maxTries {
			return v, fmt.Errorf("error %s after %d tries: %w", what, i, err)
		}
	}
}

// waitUntil waits for a retry's backoff to elapse (a millisecond here).
func waitUntil(ctx context.Context, at *time.Time) error {
	if at == nil {
		return nil
	}
	d := time.Until(*at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("error waiting for a retry backoff: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}
