package runner

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events"
)

// Job states: a job's outcome is recorded by its worker or its step is
// released by shutdown, whichever moves it out of jobRunning first.
const (
	jobRunning int32 = iota
	jobRecording
	jobAbandoned
)

// job is one claimed attempt.
type job struct {
	step    events.Step
	task    events.Task
	attempt int
	// claim identifies the claim that started the attempt (the step's
	// claim_id then). Unlike attempt numbers, which release and reset hand
	// out again, it is never reused: the fence compares it.
	claim  int64
	ctx    context.Context // the handler's ctx before its timeout; cancelled by shutdown
	cancel context.CancelFunc
	state  atomic.Int32
}

// claim starts one ready step and returns it as a job, or nil. It runs on
// base (never cancelled by Run's ctx) with RecordTimeout, so stopping never
// abandons a claim the server may already have committed.
func (r *Runner) claim(base context.Context) *job {
	ctx, cancel := context.WithTimeout(base, r.cfg.RecordTimeout)
	defer cancel()
	rows, err := r.queries.ClaimReadySteps(ctx, r.pool, db.ClaimReadyStepsParams{ClaimLimit: 1, Handlers: r.handlers})
	if err != nil {
		r.stats.claimErrors.Add(1)
		r.logger.Error("stepevents runner: error claiming a step", slog.String("err", err.Error()))
		return nil
	}
	if len(rows) == 0 {
		return nil
	}
	r.stats.claimed.Add(1)
	row := rows[0]
	j := &job{step: stepFromClaim(row), task: taskFromClaim(row), attempt: int(row.Attempts), claim: claimOf(row.ClaimID)}
	j.ctx, j.cancel = context.WithCancel(base)
	r.mu.Lock()
	r.inflight[j] = struct{}{} // from here on, shutdown sees it
	r.mu.Unlock()
	return j
}

// claimOf reads a claim_id: NULL (a step never claimed) gives 0, which
// matches no claim, since transition ids start at 1.
func claimOf(id *int64) int64 {
	if id == nil {
		return 0
	}
	return *id
}

func stepFromClaim(r db.ClaimReadyStepsRow) events.Step {
	return events.Step{
		StepUUID: r.StepUuid, TaskUUID: r.TaskUuid, Name: r.Name, Handler: r.Handler, State: r.State,
		Retryable: r.Retryable, MaxAttempts: int(r.MaxAttempts), Attempts: int(r.Attempts),
		Backoff: r.Backoff, BackoffBaseMS: int(r.BackoffBaseMs), MaxBackoffMS: int(r.MaxBackoffMs),
		TimeoutSeconds: int(r.TimeoutSeconds), LastAttemptedAt: r.LastAttemptedAt, LastFailureAt: r.LastFailureAt,
		BackoffRequestSeconds: r.BackoffRequestSeconds, NextRetryAt: r.NextRetryAt,
		Results: r.Results, LastError: r.LastError, ClaimID: claimOf(r.ClaimID),
	}
}

func taskFromClaim(r db.ClaimReadyStepsRow) events.Task {
	return events.Task{
		TaskUUID: r.TaskUuid, Namespace: r.TaskNamespace, TemplateName: r.TaskTemplateName,
		TemplateVersion: r.TaskTemplateVersion, Context: r.TaskContext, CorrelationID: r.TaskCorrelationID,
		State: r.TaskState, CreatedAt: r.TaskCreatedAt, CompletedAt: r.TaskCompletedAt,
	}
}

func stepFromRow(r db.StepeventsWorkflowStep) events.Step {
	return events.Step{
		StepUUID: r.StepUuid, TaskUUID: r.TaskUuid, Name: r.Name, Handler: r.Handler, State: r.State,
		Retryable: r.Retryable, MaxAttempts: int(r.MaxAttempts), Attempts: int(r.Attempts),
		Backoff: r.Backoff, BackoffBaseMS: int(r.BackoffBaseMs), MaxBackoffMS: int(r.MaxBackoffMs),
		TimeoutSeconds: int(r.TimeoutSeconds), LastAttemptedAt: r.LastAttemptedAt, LastFailureAt: r.LastFailureAt,
		BackoffRequestSeconds: r.BackoffRequestSeconds, NextRetryAt: r.NextRetryAt,
		Results: r.Results, LastError: r.LastError, ClaimID: claimOf(r.ClaimID),
	}
}

// abandon releases a claimed job that will not run.
func (r *Runner) abandon(j *job, reason string) {
	j.state.Store(jobAbandoned)
	j.cancel()
	_ = r.release(j, reason) // logged and counted by release
	r.mu.Lock()
	delete(r.inflight, j)
	r.mu.Unlock()
}
