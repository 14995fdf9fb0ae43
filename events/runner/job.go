package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events"
)

// recordRetries is how many times a recording that failed for a reason
// other than the outcome itself (a dropped connection, a deadlock) is
// tried again, with a growing pause, within RecordTimeout.
const recordRetries = 3

// work runs one job's handler and records its outcome, unless shutdown
// abandoned the job first.
func (r *Runner) work(j *job) {
	defer func() {
		j.cancel()
		r.mu.Lock()
		delete(r.inflight, j)
		r.mu.Unlock()
	}()
	timeout := r.timeoutFor(j.step)
	hctx, cancel := context.WithTimeout(j.ctx, timeout)
	result, panicked, herr := r.call(hctx, j)
	deadlineHit := errors.Is(hctx.Err(), context.DeadlineExceeded)
	cancel()
	if !j.state.CompareAndSwap(jobRunning, jobRecording) {
		r.logger.Warn("stepevents runner: discarding the outcome of a released step",
			slog.String("step_uuid", j.step.StepUUID.String()), slog.Int("attempt", j.attempt))
		return
	}
	var f *events.Failure
	switch {
	case panicked:
		r.stats.panics.Add(1)
		ff := failureOf(herr, TypePanic)
		ff.Code = TypePanic
		f = &ff
	case herr != nil && deadlineHit:
		r.stats.timedOut.Add(1)
		ff := failureOf(fmt.Errorf("step timed out after %s: %w", timeout, herr), TypeTimeout)
		if ff.Code == "" {
			ff.Code = TypeTimeout
		}
		f = &ff
	case herr != nil:
		ff := failureOf(herr, TypeHandlerError)
		f = &ff
	}
	r.record(j, result, f)
}

// call runs the handler, turning a panic into an error.
func (r *Runner) call(ctx context.Context, j *job) (result json.RawMessage, panicked bool, err error) {
	h := r.cfg.Handlers[j.step.Handler]
	defer func() {
		if v := recover(); v != nil {
			r.logger.Error("stepevents runner: handler panicked", slog.String("handler", j.step.Handler),
				slog.String("step_uuid", j.step.StepUUID.String()), slog.Any("panic", v),
				slog.String("stack", string(debug.Stack())))
			result, panicked, err = nil, true, panicError(j.step.Handler, v)
		}
	}()
	result, err = h(ctx, j.step, j.task)
	return result, false, err
}

// record commits the job's outcome: success (f nil) or failure. A result
// the database refuses (not JSON, too big) is recorded as a failure. Both
// are fenced to j's claim (events.Client.CompleteClaimedStep): a late
// outcome of an attempt that was released or recovered changes nothing.
func (r *Runner) record(j *job, result json.RawMessage, f *events.Failure) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), r.cfg.RecordTimeout)
	defer cancel()
	if f == nil {
		comp, err := r.recordRetrying(ctx, j, outcome{succeeded: true, result: result},
			func(ctx context.Context) (*events.Completion, error) {
				return r.client.CompleteClaimedStep(ctx, j.step.StepUUID, j.claim, result)
			})
		if err == nil || errors.Is(err, errUnacknowledged) {
			r.stats.completed.Add(1)
			r.recorded(comp)
			return
		}
		if !errors.Is(err, events.ErrInvalidInput) {
			r.recordFailed(j, err)
			return
		}
		ff := failureOf(fmt.Errorf("handler %s returned a result that was refused: %w", j.step.Handler, err),
			TypeInvalidResult)
		ff.Code = TypeInvalidResult
		f = &ff
	}
	comp, err := r.recordRetrying(ctx, j, outcome{failure: *f}, func(ctx context.Context) (*events.Completion, error) {
		return r.client.FailClaimedStep(ctx, j.step.StepUUID, j.claim, *f)
	})
	if err != nil && !errors.Is(err, errUnacknowledged) {
		r.recordFailed(j, err)
		return
	}
	r.stats.failed.Add(1)
	r.recorded(comp)
}

// outcome is what one recording writes, as the check for an earlier try's
// commit compares it.
type outcome struct {
	succeeded bool
	result    json.RawMessage
	failure   events.Failure
}

// errUnacknowledged: an earlier try committed the outcome, but the reply to
// its COMMIT was lost (the connection dropped); the retry found the attempt
// ended by that very outcome. It is recorded, but no Completion came back,
// so its fast events were not sent.
var errUnacknowledged = errors.New("outcome committed by an earlier try whose acknowledgement was lost")

// recordRetrying runs fn, one transaction of its own (two pipelined round
// trips, fast events released after commit), and tries again after
// failures that are not about the outcome (a dropped connection, a
// deadlock). If the connection dropped after the server committed but
// before its reply arrived, the retry finds the attempt over
// (ErrSuperseded); when the step's history shows it ended by o under j's
// claim, the result is errUnacknowledged instead: recorded, not discarded.
func (r *Runner) recordRetrying(ctx context.Context, j *job, o outcome,
	fn func(ctx context.Context) (*events.Completion, error)) (*events.Completion, error) {
	mayHaveCommitted := false // an earlier try failed, perhaps after its commit
	for try := 0; ; try++ {
		comp, err := fn(ctx)
		if mayHaveCommitted && errors.Is(err, errSuperseded) && r.recordedEarlier(ctx, j, o) {
			r.stats.unacknowledged.Add(1)
			r.logger.Warn("stepevents runner: outcome recorded by an earlier try whose reply was lost; its fast events were not sent",
				slog.String("step_uuid", j.step.StepUUID.String()), slog.Int("attempt", j.attempt))
			return nil, errUnacknowledged
		}
		if err == nil || !retryable(err) || try == recordRetries || ctx.Err() != nil {
			if errors.Is(err, errSuperseded) {
				err = fmt.Errorf("step %s attempt %d (claim %d): %w", j.step.StepUUID, j.attempt, j.claim, err)
			}
			return comp, err
		}
		mayHaveCommitted = true
		r.logger.Warn("stepevents runner: error recording an outcome, retrying",
			slog.String("step_uuid", j.step.StepUUID.String()), slog.Int("attempt", j.attempt),
			slog.String("err", err.Error()))
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(50<<try) * time.Millisecond):
		}
	}
}

// recordedEarlier reports whether j's attempt was ended by o itself (see
// RecordedUnderClaim). An error reading it counts as no: the outcome is
// then reported superseded, as before this check existed.
func (r *Runner) recordedEarlier(ctx context.Context, j *job, o outcome) bool {
	// Encoded as the error document encodes it (events.Client.FailStep):
	// invalid UTF-8 becomes U+FFFD there, and must here too. Encoding a
	// string cannot fail.
	message, _ := json.Marshal(o.failure.Message)
	mine, err := r.queries.RecordedUnderClaim(ctx, r.pool, db.RecordedUnderClaimParams{
		ClaimID: j.claim, StepUuid: j.step.StepUUID, Succeeded: o.succeeded, Result: o.result,
		ErrorMessageJson: message, Permanent: o.failure.Permanent})
	if err != nil {
		r.logger.Warn("stepevents runner: could not check whether an earlier try recorded the outcome",
			slog.String("step_uuid", j.step.StepUUID.String()), slog.String("err", err.Error()))
		return false
	}
	return mine
}

// lockAttempt locks the step and checks that it is in_progress under j's
// claim. The claim, not the attempt number: release_step refunds an attempt
// and reset_step zeroes the count, so a later claim may run under j's
// attempt number while j's handler is still going.
func (r *Runner) lockAttempt(ctx context.Context, tx pgx.Tx, j *job) error {
	_, err := r.queries.LockClaim(ctx, tx, db.LockClaimParams{StepUuid: j.step.StepUUID, ClaimID: j.claim})
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("step %s attempt %d (claim %d): %w", j.step.StepUUID, j.attempt, j.claim, errSuperseded)
	}
	if err != nil {
		return fmt.Errorf("error locking step %s: %w", j.step.StepUUID, err)
	}
	return nil
}

// retryable reports whether recording may succeed if tried again: not when
// the outcome itself was refused or the attempt is gone.
func retryable(err error) bool {
	for _, e := range []error{errSuperseded, events.ErrInvalidInput, events.ErrIllegalTransition,
		events.ErrNotFound, events.ErrUnknownPublisher, events.ErrQueueMissing, events.ErrNotMigrated, events.ErrStepNotReady} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

// recordFailed counts and logs an outcome that was not recorded.
func (r *Runner) recordFailed(j *job, err error) {
	attrs := []any{slog.String("step_uuid", j.step.StepUUID.String()), slog.String("step", j.step.Name),
		slog.Int("attempt", j.attempt), slog.String("err", err.Error())}
	if errors.Is(err, errSuperseded) {
		r.stats.superseded.Add(1)
		r.logger.Warn("stepevents runner: outcome discarded: the attempt is no longer in progress", attrs...)
		return
	}
	r.stats.recordErrors.Add(1)
	r.logger.Error("stepevents runner: error recording an outcome; the step stays in_progress until recovered as stale",
		attrs...)
}

// recorded hands a committed completion to OnRecorded.
func (r *Runner) recorded(comp *events.Completion) {
	if r.cfg.OnRecorded != nil && comp != nil {
		r.cfg.OnRecorded(comp)
	}
}

// release gives j's step back (pending, attempt refunded) if j's attempt is
// still in progress.
func (r *Runner) release(j *job, reason string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), r.cfg.RecordTimeout)
	defer cancel()
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if err := r.lockAttempt(ctx, tx, j); err != nil {
			return err
		}
		_, err := events.ReleaseStep(ctx, tx, j.step.StepUUID, reason)
		return err
	})
	switch {
	case err == nil:
		r.stats.released.Add(1)
		r.logger.Info("stepevents runner: step released", slog.String("step_uuid", j.step.StepUUID.String()),
			slog.Int("attempt", j.attempt), slog.String("reason", reason))
		return nil
	case errors.Is(err, errSuperseded):
		r.stats.superseded.Add(1)
		return nil
	default:
		r.stats.recordErrors.Add(1)
		r.logger.Error("stepevents runner: error releasing a step; it stays in_progress until recovered as stale",
			slog.String("step_uuid", j.step.StepUUID.String()), slog.String("err", err.Error()))
		return fmt.Errorf("error releasing step %s: %w", j.step.StepUUID, err)
	}
}
