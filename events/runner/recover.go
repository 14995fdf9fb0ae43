package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events"
)

// recoverBatch bounds the stale steps one RecoverStaleSteps pass handles.
const recoverBatch = 100

// RecoverStaleSteps fails the in_progress steps of this runner's handlers
// whose attempt started longer ago than their timeout (timeout_seconds, or
// Config.StepTimeout) plus Config.StaleGrace: their worker is presumed lost.
// Each failure is recorded like a handler's (type stale_attempt, code
// worker_lost) with its declared events, in its own transaction, and only
// if the step is still in that same attempt. The step retries while it has
// attempts left, else it ends in error. It returns how many steps it
// failed. Run calls it every Config.RecoverInterval; call it yourself to
// recover at other times (e.g. at startup).
//
// A step whose recovery fails (say its failure's publisher errors) is
// skipped for the rest of the pass and the others are still recovered; the
// error returned joins those failures (at most maxRecoverErrors of them).
func (r *Runner) RecoverStaleSteps(ctx context.Context) (int, error) {
	recovered := 0
	// Steps this pass could not recover are excluded from the next page, so
	// a batch of unrecoverable steps never hides the others.
	skipped := []uuid.UUID{}
	var errs []error
	for {
		rows, err := r.queries.StaleSteps(ctx, r.pool, db.StaleStepsParams{
			OlderThanSeconds: r.cfg.StaleGrace.Seconds(), DefaultTimeoutSeconds: r.cfg.StepTimeout.Seconds(),
			MaxSteps: recoverBatch, Handlers: r.handlers, Exclude: skipped})
		if err != nil {
			return recovered, errors.Join(append(errs, fmt.Errorf("error listing stale steps: %w", err))...)
		}
		for _, row := range rows {
			ok, err := r.recoverStep(ctx, stepFromRow(row), claimOf(row.ClaimID))
			if ok {
				recovered++
			} else {
				skipped = append(skipped, row.StepUuid)
			}
			if err != nil && len(errs) < maxRecoverErrors {
				errs = append(errs, err)
			}
			if ctx.Err() != nil {
				return recovered, errors.Join(append(errs, ctx.Err())...)
			}
		}
		if len(rows) < recoverBatch {
			return recovered, errors.Join(errs...)
		}
	}
}

// maxRecoverErrors bounds the errors one RecoverStaleSteps pass returns: a
// database outage fails every step alike.
const maxRecoverErrors = 10

// recoverStep fails one stale step if it is still in the attempt seen,
// the one claim started.
func (r *Runner) recoverStep(ctx context.Context, s events.Step, claim int64) (bool, error) {
	j := &job{step: s, attempt: s.Attempts, claim: claim}
	var started time.Time
	if s.LastAttemptedAt != nil {
		started = *s.LastAttemptedAt
	}
	f := events.Failure{
		Message: fmt.Sprintf("attempt %d of step %s was abandoned: no outcome within %s of its start at %s (timeout %s plus grace %s); its worker is presumed lost",
			s.Attempts, s.Name, r.timeoutFor(s)+r.cfg.StaleGrace, started.UTC().Format(time.RFC3339), r.timeoutFor(s),
			r.cfg.StaleGrace),
		Type: TypeStaleAttempt,
		Code: "worker_lost",
	}
	var comp *events.Completion
	err := r.client.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := r.lockAttempt(ctx, tx, j); err != nil {
			return err
		}
		var err error
		comp, err = r.client.FailStepTx(ctx, tx, s.StepUUID, f)
		return err
	})
	if err != nil {
		if !retryable(err) {
			// Recorded or recovered by someone else meanwhile, or refused:
			// not this pass's business.
			r.logger.Warn("stepevents runner: stale step not recovered", slog.String("step_uuid", s.StepUUID.String()),
				slog.String("err", err.Error()))
			return false, nil
		}
		return false, fmt.Errorf("error recovering stale step %s: %w", s.StepUUID, err)
	}
	r.stats.recovered.Add(1)
	r.logger.Warn("stepevents runner: stale step failed, its worker presumed lost",
		slog.String("step_uuid", s.StepUUID.String()), slog.String("step", s.Name), slog.Int("attempt", s.Attempts),
		slog.String("state", comp.Step.State))
	r.recorded(comp)
	return true, nil
}
