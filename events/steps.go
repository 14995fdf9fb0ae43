package events

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/stepevents/stepevents/db"
)

// StartStep claims a ready step: pending or waiting_for_retry, dependencies
// satisfied, backoff elapsed, attempts left. It counts an attempt. A step
// that is not ready gives ErrStepNotReady with the reason.
func StartStep(ctx context.Context, dbtx Executor, stepUUID uuid.UUID) (Step, error) {
	row, err := db.New().StartStep(ctx, dbtx, stepUUID)
	return stepFromRow(row), mapError(err, fmt.Sprintf("error starting step %s", stepUUID))
}

// ReleaseStep gives an in-progress step back (pending) without a result and
// refunds its attempt: for a worker shutting down before its handler ended.
func ReleaseStep(ctx context.Context, dbtx Executor, stepUUID uuid.UUID, reason string) (Step, error) {
	row, err := db.New().ReleaseStep(ctx, dbtx, db.ReleaseStepParams{StepUuid: stepUUID, Reason: reason})
	return stepFromRow(row), mapError(err, fmt.Sprintf("error releasing step %s", stepUUID))
}

// ResolveStep marks a step resolved_manually (an operator action): it
// satisfies its dependents as if complete. Recorded in the history with note.
func ResolveStep(ctx context.Context, dbtx Executor, stepUUID uuid.UUID, note string) (Step, error) {
	row, err := db.New().ResolveStep(ctx, dbtx, db.ResolveStepParams{StepUuid: stepUUID, Note: note})
	return stepFromRow(row), mapError(err, fmt.Sprintf("error resolving step %s", stepUUID))
}

// ResetStep gives a failed step (state error) fresh attempts: back to
// pending with attempts 0. Recorded in the history with note.
func ResetStep(ctx context.Context, dbtx Executor, stepUUID uuid.UUID, note string) (Step, error) {
	row, err := db.New().ResetStep(ctx, dbtx, db.ResetStepParams{StepUuid: stepUUID, Note: note})
	return stepFromRow(row), mapError(err, fmt.Sprintf("error resetting step %s", stepUUID))
}

// CancelStep cancels a step that is not terminal.
func CancelStep(ctx context.Context, dbtx Executor, stepUUID uuid.UUID, note string) (Step, error) {
	row, err := db.New().CancelStep(ctx, dbtx, db.CancelStepParams{StepUuid: stepUUID, Note: note})
	return stepFromRow(row), mapError(err, fmt.Sprintf("error cancelling step %s", stepUUID))
}

// GetStep returns a step.
func GetStep(ctx context.Context, dbtx Executor, stepUUID uuid.UUID) (Step, error) {
	row, err := db.New().GetStep(ctx, dbtx, stepUUID)
	return stepFromRow(row), mapError(err, fmt.Sprintf("error reading step %s", stepUUID))
}

// Readiness returns stepevents.get_step_readiness_status for a task: every
// step, or only stepUUIDs when given.
func Readiness(ctx context.Context, dbtx Executor, taskUUID uuid.UUID, stepUUIDs ...uuid.UUID) ([]StepReadiness, error) {
	rows, err := db.New().GetStepReadiness(ctx, dbtx, db.GetStepReadinessParams{TaskUuid: taskUUID, StepUuids: stepUUIDs})
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("error reading readiness of task %s", taskUUID))
	}
	if len(rows) == 0 {
		if _, err := GetTask(ctx, dbtx, taskUUID); err != nil {
			return nil, err
		}
	}
	out := make([]StepReadiness, 0, len(rows))
	for _, r := range rows {
		out = append(out, readinessFromRow(r))
	}
	return out, nil
}

// Transitions returns a step's transition history, oldest first.
func Transitions(ctx context.Context, dbtx Executor, stepUUID uuid.UUID) ([]Transition, error) {
	rows, err := db.New().ListStepTransitions(ctx, dbtx, stepUUID)
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("error reading transitions of step %s", stepUUID))
	}
	out := make([]Transition, 0, len(rows))
	for _, r := range rows {
		out = append(out, Transition{FromState: deref(r.FromState), ToState: r.ToState, MostRecent: r.MostRecent,
			SortKey: int(r.SortKey), Metadata: r.Metadata, CreatedAt: r.CreatedAt})
	}
	return out, nil
}
