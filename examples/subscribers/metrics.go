package subscribers

import (
	"context"
	"maps"
	"sync"

	"github.com/stepevents/stepevents/events"
)

// EventMetricsCollector counts the events it receives: in total, by step
// outcome (payload.execution_result.success) and by event name. Subscribe
// its Handler to a bus; it is safe for concurrent use.
type EventMetricsCollector struct {
	mu       sync.Mutex
	received uint64
	success  uint64
	failure  uint64
	byName   map[string]uint64
}

// NewEventMetricsCollector returns an empty collector.
func NewEventMetricsCollector() *EventMetricsCollector {
	return &EventMetricsCollector{byName: map[string]uint64{}}
}

// EventMetrics is a point-in-time copy of an EventMetricsCollector.
type EventMetrics struct {
	EventsReceived uint64            `json:"events_received"`
	SuccessEvents  uint64            `json:"success_events"`
	FailureEvents  uint64            `json:"failure_events"`
	ByEventName    map[string]uint64 `json:"by_event_name"`
}

// Handler returns the bus handler that feeds the collector.
func (m *EventMetricsCollector) Handler() events.HandlerFunc {
	return func(_ context.Context, ev events.Event) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.received++
		if ev.Payload.ExecutionResult.Success {
			m.success++
		} else {
			m.failure++
		}
		m.byName[ev.EventName]++
		return nil
	}
}

// Snapshot copies the counts.
func (m *EventMetricsCollector) Snapshot() EventMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	return EventMetrics{EventsReceived: m.received, SuccessEvents: m.success, FailureEvents: m.failure,
		ByEventName: maps.Clone(m.byName)}
}
