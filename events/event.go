package events

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// EventVersion is the event_version every event carries, as in the original.
const EventVersion = "1.0"

// Event is a domain event, shaped like the original system's so existing
// consumers can read it. The durable pgmq message body is exactly this JSON.
type Event struct {
	EventID      uuid.UUID     `json:"event_id"`
	EventName    string        `json:"event_name"`
	EventVersion string        `json:"event_version"`
	Payload      EventPayload  `json:"payload"`
	Metadata     EventMetadata `json:"metadata"`
}

// EventPayload holds the execution result, the business payload and the step context.
type EventPayload struct {
	ExecutionResult ExecutionResult `json:"execution_result"`
	// Payload is the business data: the step result on success, the StepError on failure
	// (or whatever a custom publisher chose).
	Payload json.RawMessage `json:"payload"`
	// TaskSequenceStep is the step context: task, workflow_step, dependency_results.
	TaskSequenceStep json.RawMessage `json:"task_sequence_step"`
}

// ExecutionResult says how the step ended.
type ExecutionResult struct {
	StepUUID uuid.UUID       `json:"step_uuid"`
	Success  bool            `json:"success"`
	Status   string          `json:"status"` // "completed" or "failed"
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *StepError      `json:"error,omitempty"`
}

// EventMetadata identifies where the event came from.
type EventMetadata struct {
	TaskUUID      uuid.UUID `json:"task_uuid"`
	StepUUID      uuid.UUID `json:"step_uuid"`
	StepName      string    `json:"step_name"`
	Namespace     string    `json:"namespace"`
	CorrelationID uuid.UUID `json:"correlation_id"`
	FiredAt       time.Time `json:"fired_at"`
	FiredBy       string    `json:"fired_by"`
}

// StepError describes a failure. It is also the default business payload of
// failure events, so their schemas can require message and code.
type StepError struct {
	Message     string `json:"message"`
	Type        string `json:"type"`
	Code        string `json:"code"`
	Retryable   bool   `json:"retryable"`
	Attempt     int    `json:"attempt"`
	MaxAttempts int    `json:"max_attempts"`
}
