package template

import "encoding/json"

// Condition says on which step outcome an event is published. It is a string
// type so YAML values map onto it directly and stay readable in storage.
type Condition string

// The publication conditions. Retryability of a failure is decided by the
// caller (from the database, after attempts are counted), not here.
const (
	// ConditionSuccess publishes when the step succeeded; it is the default.
	ConditionSuccess Condition = "success"
	// ConditionFailure publishes on any failure.
	ConditionFailure Condition = "failure"
	// ConditionRetryableFailure publishes on a failure that will be retried.
	ConditionRetryableFailure Condition = "retryable_failure"
	// ConditionPermanentFailure publishes on a failure that will not be retried.
	ConditionPermanentFailure Condition = "permanent_failure"
	// ConditionAlways publishes on every outcome.
	ConditionAlways Condition = "always"
)

// Valid reports whether c is one of the five conditions, so callers that
// build declarations by hand can reject typos the loader would reject.
func (c Condition) Valid() bool {
	switch c {
	case ConditionSuccess, ConditionFailure, ConditionRetryableFailure, ConditionPermanentFailure, ConditionAlways:
		return true
	}
	return false
}

// DeliveryMode says where an event goes: the durable pgmq queue, the fast
// in-process/NOTIFY path, or both.
type DeliveryMode string

// The delivery modes.
const (
	// DeliveryDurable sends to {namespace}_domain_events; it is the default.
	DeliveryDurable DeliveryMode = "durable"
	// DeliveryFast delivers to in-process subscribers only (best effort).
	DeliveryFast DeliveryMode = "fast"
	// DeliveryBroadcast does both, with one event id.
	DeliveryBroadcast DeliveryMode = "broadcast"
)

// Valid reports whether d is one of the three delivery modes.
func (d DeliveryMode) Valid() bool {
	switch d {
	case DeliveryDurable, DeliveryFast, DeliveryBroadcast:
		return true
	}
	return false
}

// Backoff names the growth of the delay between retries of a step.
type Backoff string

// The backoff strategies. The original also listed fibonacci, which it never
// applied; stepevents rejects it rather than pretend.
const (
	// BackoffNone retries without delay.
	BackoffNone Backoff = "none"
	// BackoffLinear waits base, 2×base, 3×base, … capped at the maximum.
	BackoffLinear Backoff = "linear"
	// BackoffExponential waits base, 2×base, 4×base, … capped at the maximum; it is the default.
	BackoffExponential Backoff = "exponential"
)

// Valid reports whether b is one of the three backoff strategies.
func (b Backoff) Valid() bool {
	switch b {
	case BackoffNone, BackoffLinear, BackoffExponential:
		return true
	}
	return false
}

// Template is a validated task template. Load returns it only when the file
// has no errors, so every field can be trusted by the engine.
type Template struct {
	Name, Namespace, Version, Description string
	// InputSchema is the task input's JSON Schema as JSON; nil when absent.
	InputSchema json.RawMessage
	// CompiledInputSchema validates task inputs; nil when InputSchema is nil.
	CompiledInputSchema *CompiledSchema
	// Steps are in file order.
	Steps []Step
	// Source is the file name given to Load, for messages.
	Source string
	// Environment is the environment whose overrides were applied ("" = none).
	Environment string
	// Definition is the whole document as JSON, after environment overrides,
	// for storage. It is itself a loadable template (JSON is YAML).
	Definition json.RawMessage
	// Warnings lists accepted-but-ignored keys and other non-fatal findings.
	Warnings []Problem
}

// Step is one unit of work in a template.
type Step struct {
	Name, Description string
	// Handler is handler.callable: the name under which the step's code is registered.
	Handler string
	// Dependencies name steps that must complete first (key dependencies or depends_on).
	Dependencies []string
	Retry        Retry
	// TimeoutSeconds bounds one attempt; 0 means no timeout.
	TimeoutSeconds int
	// Events are the step's publishes_events, in file order.
	Events []EventDeclaration
}

// Retry is a step's resolved retry policy: defaults filled in and
// environment overrides merged, so the engine never has to default anything.
type Retry struct {
	// Retryable false means the first failure is permanent (one attempt).
	Retryable bool
	// MaxAttempts counts every execution, including the first (1..100).
	MaxAttempts int
	Backoff     Backoff
	// BackoffBaseMS is the first delay (100..3600000).
	BackoffBaseMS int
	// MaxBackoffMS caps every delay (1000..3600000, >= BackoffBaseMS).
	MaxBackoffMS int
}

// DefaultRetry is the policy of a step without a retry block; keys omitted
// from a present block take the same values. It matches the original.
func DefaultRetry() Retry {
	return Retry{Retryable: true, MaxAttempts: 3, Backoff: BackoffExponential, BackoffBaseMS: 1000, MaxBackoffMS: 30000}
}

// EventDeclaration is one entry of a step's publishes_events.
type EventDeclaration struct {
	Name, Description string
	Condition         Condition
	DeliveryMode      DeliveryMode
	// Publisher names a registered custom publisher; "" means the default one.
	Publisher string
	// Schema is the payload's JSON Schema as JSON; nil when absent.
	Schema json.RawMessage
	// CompiledSchema validates payloads; nil when Schema is nil (everything passes).
	CompiledSchema *CompiledSchema
	// DurableRedact lists JSON pointers (RFC 6901) removed from the durable
	// copy of the payload (key durable_redact), so a broadcast event can keep
	// sensitive fields off the external queue.
	DurableRedact []string
}

// Step returns the step with the given name, so callers can go from a
// database row back to its declaration.
func (t *Template) Step(name string) (*Step, bool) {
	for i := range t.Steps {
		if t.Steps[i].Name == name {
			return &t.Steps[i], true
		}
	}
	return nil, false
}

// QueueName is the durable pgmq queue of the template's namespace. The
// namespace rules guarantee it (and its _dlq) fit pgmq's 47-character limit.
func (t *Template) QueueName() string {
	return t.Namespace + "_domain_events"
}

// Event returns the step's declaration of the named event, so a publisher
// can find condition, mode and schema from an event name.
func (s *Step) Event(name string) (*EventDeclaration, bool) {
	for i := range s.Events {
		if s.Events[i].Name == name {
			return &s.Events[i], true
		}
	}
	return nil, false
}

// ValidatePayload checks v against the event's schema; nil means valid (or
// no schema). It is a nil-safe shortcut for e.CompiledSchema.Validate.
func (e *EventDeclaration) ValidatePayload(v any) []Violation {
	return e.CompiledSchema.Validate(v)
}
