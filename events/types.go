package events

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/stepevents/stepevents/db"
)

// Step is a workflow step as stored.
type Step struct {
	StepUUID              uuid.UUID
	TaskUUID              uuid.UUID
	Name                  string
	Handler               string
	State                 string
	Retryable             bool
	MaxAttempts           int
	Attempts              int
	Backoff               string
	BackoffBaseMS         int
	MaxBackoffMS          int
	TimeoutSeconds        int
	LastAttemptedAt       *time.Time
	LastFailureAt         *time.Time
	BackoffRequestSeconds *float64
	NextRetryAt           *time.Time
	Results               json.RawMessage
	LastError             json.RawMessage
	// ClaimID identifies the claim that started the latest attempt (the
	// in_progress transition StartStep wrote); 0 if the step was never
	// claimed. CompleteClaimedStep and FailClaimedStep record an outcome
	// only while the step is still in progress under it.
	ClaimID int64
}

func stepFromRow(r db.StepeventsWorkflowStep) Step {
	return Step{
		StepUUID: r.StepUuid, TaskUUID: r.TaskUuid, Name: r.Name, Handler: r.Handler, State: r.State,
		Retryable: r.Retryable, MaxAttempts: int(r.MaxAttempts), Attempts: int(r.Attempts),
		Backoff: r.Backoff, BackoffBaseMS: int(r.BackoffBaseMs), MaxBackoffMS: int(r.MaxBackoffMs),
		TimeoutSeconds: int(r.TimeoutSeconds), LastAttemptedAt: r.LastAttemptedAt, LastFailureAt: r.LastFailureAt,
		BackoffRequestSeconds: r.BackoffRequestSeconds, NextRetryAt: r.NextRetryAt,
		Results: r.Results, LastError: r.LastError, ClaimID: deref(r.ClaimID),
	}
}

// Task is a task as stored.
type Task struct {
	TaskUUID        uuid.UUID
	Namespace       string
	TemplateName    string
	TemplateVersion string
	Context         json.RawMessage
	CorrelationID   uuid.UUID
	State           string
	CreatedAt       time.Time
	CompletedAt     *time.Time
}

func taskFromRow(r db.StepeventsTask) Task {
	return Task{
		TaskUUID: r.TaskUuid, Namespace: r.Namespace, TemplateName: r.TemplateName,
		TemplateVersion: r.TemplateVersion, Context: r.Context, CorrelationID: r.CorrelationID,
		State: r.State, CreatedAt: r.CreatedAt, CompletedAt: r.CompletedAt,
	}
}

// StepReadiness is one row of stepevents.get_step_readiness_status.
type StepReadiness struct {
	StepUUID              uuid.UUID
	TaskUUID              uuid.UUID
	Name                  string
	CurrentState          string
	DependenciesSatisfied bool
	TotalParents          int
	CompletedParents      int
	Attempts              int
	MaxAttempts           int
	Retryable             bool
	// IsRetryable is retryable AND not declared permanent AND attempts < max_attempts.
	IsRetryable   bool
	RetryEligible bool
	// BackoffRequestSeconds is the delay chosen at the last retryable failure.
	BackoffRequestSeconds *float64
	LastAttemptedAt       *time.Time
	LastFailureAt         *time.Time
	NextRetryAt           *time.Time
	ReadyForExecution     bool
}

func readinessFromRow(r db.StepeventsStepReadiness) StepReadiness {
	return StepReadiness{
		StepUUID: r.StepUuid, TaskUUID: r.TaskUuid, Name: r.Name, CurrentState: r.CurrentState,
		DependenciesSatisfied: r.DependenciesSatisfied, TotalParents: int(r.TotalParents),
		CompletedParents: int(r.CompletedParents), Attempts: int(r.Attempts), MaxAttempts: int(r.MaxAttempts),
		Retryable: r.Retryable, IsRetryable: deref(r.IsRetryable), RetryEligible: deref(r.RetryEligible),
		BackoffRequestSeconds: r.BackoffRequestSeconds, LastAttemptedAt: r.LastAttemptedAt,
		LastFailureAt: r.LastFailureAt, NextRetryAt: r.NextRetryAt, ReadyForExecution: deref(r.ReadyForExecution),
	}
}

// Transition is one row of a step's transition history.
type Transition struct {
	FromState  string // "" for the initial transition
	ToState    string
	MostRecent bool
	SortKey    int
	Metadata   json.RawMessage
	CreatedAt  time.Time
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// stepRowJSON is a workflow_steps row as to_jsonb renders it, so a function
// can return the step with the rest of its answer in one round trip.
type stepRowJSON struct {
	StepUUID              uuid.UUID       `json:"step_uuid"`
	TaskUUID              uuid.UUID       `json:"task_uuid"`
	Name                  string          `json:"name"`
	Handler               string          `json:"handler"`
	State                 string          `json:"state"`
	Retryable             bool            `json:"retryable"`
	MaxAttempts           int             `json:"max_attempts"`
	Attempts              int             `json:"attempts"`
	Backoff               string          `json:"backoff"`
	BackoffBaseMS         int             `json:"backoff_base_ms"`
	MaxBackoffMS          int             `json:"max_backoff_ms"`
	TimeoutSeconds        int             `json:"timeout_seconds"`
	LastAttemptedAt       *time.Time      `json:"last_attempted_at"`
	LastFailureAt         *time.Time      `json:"last_failure_at"`
	BackoffRequestSeconds *float64        `json:"backoff_request_seconds"`
	NextRetryAt           *time.Time      `json:"next_retry_at"`
	Results               json.RawMessage `json:"results"`
	LastError             json.RawMessage `json:"last_error"`
	ClaimID               int64           `json:"claim_id"`
}

func (r stepRowJSON) step() Step {
	s := Step(r)
	if string(s.Results) == "null" {
		s.Results = nil
	}
	if string(s.LastError) == "null" {
		s.LastError = nil
	}
	return s
}
