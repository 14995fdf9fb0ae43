package events

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/stepevents/stepevents/events/template"
)

// DefaultPublisherName is the fired_by of events from the default publisher.
const DefaultPublisherName = "DefaultDomainEventPublisher"

// Publisher builds the events for declarations that name it (per event:
// every declaration with `publisher: Name()` goes to it). It may apply its
// own condition logic (Declaration.Fires is the SQL verdict), enrich or
// transform payloads, choose delivery modes and emit several events. What it
// returns is routed in the same transaction as the step result. Publish must
// not block for long: it runs inside that transaction.
type Publisher interface {
	Name() string
	Publish(ctx context.Context, sc *StepContext, decl Declaration) ([]Emit, error)
}

// Emit is one event a publisher wants routed.
type Emit struct {
	// Name is the event name; it must be a valid event name.
	Name string
	// Mode is the delivery mode; "" means the declaration's.
	Mode template.DeliveryMode
	// Payload is the business payload: any value encoding/json accepts, or json.RawMessage.
	Payload any
}

// Declaration is one publishes_events entry of the completed step, with the
// SQL decision on whether its condition holds.
type Declaration struct {
	EventName    string
	Condition    template.Condition
	DeliveryMode template.DeliveryMode
	Publisher    string
	// Fires is stepevents.should_publish(condition, succeeded, is_retryable).
	Fires bool
}

// StepContext is what publishers see of a completed step.
type StepContext struct {
	TaskUUID      uuid.UUID
	StepUUID      uuid.UUID
	StepName      string
	Namespace     string
	CorrelationID uuid.UUID
	TaskContext   json.RawMessage
	Attempts      int
	MaxAttempts   int
	Succeeded     bool
	// IsRetryable is nil on success; on failure it is the database's verdict
	// after the failure was recorded.
	IsRetryable *bool
	// Result is the handler's result on success.
	Result json.RawMessage
	// Error is the failure on failure.
	Error *StepError
	// Declarations are all of the step's declarations, in template order.
	Declarations []Declaration
	// DependencyResults maps each parent step's name to its result.
	DependencyResults map[string]json.RawMessage

	sequence json.RawMessage // task_sequence_step JSON, as recorded
}

// Declared reports whether the step declares an event of that name.
func (sc *StepContext) Declared(name string) bool {
	for _, d := range sc.Declarations {
		if d.EventName == name {
			return true
		}
	}
	return false
}

// DefaultPayload is the default publisher's business payload: the result on
// success, the error on failure.
func (sc *StepContext) DefaultPayload() any {
	if sc.Succeeded {
		if len(sc.Result) == 0 {
			return json.RawMessage(`null`)
		}
		return sc.Result
	}
	return sc.Error
}

// defaultPublish is the default publisher: the declaration fires when its
// condition holds, with the default payload and the declared mode.
func defaultPublish(sc *StepContext, d Declaration) []Emit {
	if !d.Fires {
		return nil
	}
	return []Emit{{Name: d.EventName, Mode: d.DeliveryMode, Payload: sc.DefaultPayload()}}
}
