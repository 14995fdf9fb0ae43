package events

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Skip reasons: why a declaration produced no event.
const (
	// SkipConditionNotMet: the declaration's condition did not hold (and its
	// publisher, if any, emitted nothing).
	SkipConditionNotMet = "condition_not_met"
	// SkipPublisherDeclined: the condition held but the custom publisher emitted nothing.
	SkipPublisherDeclined = "publisher_declined"
	// SkipInvalidPayload: the payload failed the declaration's JSON schema; not sent.
	SkipInvalidPayload = "invalid_payload"
)

// RouterStats are the router's counters: lock-free, shared by every
// completion of one Client. Counts are taken when an event is routed inside
// the step transaction, so a transaction rolled back afterwards still counts.
type RouterStats struct {
	totalRouted        atomic.Uint64
	durableRouted      atomic.Uint64
	fastRouted         atomic.Uint64
	broadcastRouted    atomic.Uint64
	fastOversized      atomic.Uint64
	fastNotified       atomic.Uint64
	fastDeliveryErrors atomic.Uint64
	routingErrors      atomic.Uint64
	skipped            sync.Map // reason -> *atomic.Uint64
}

// RouterStatsSnapshot is a point-in-time copy of RouterStats.
type RouterStatsSnapshot struct {
	// TotalRouted counts events handed to a delivery path (a broadcast once).
	TotalRouted uint64 `json:"total_routed"`
	// DurableRouted counts durable-mode events sent with pgmq.send (not broadcasts).
	DurableRouted uint64 `json:"durable_routed"`
	// FastRouted counts fast-mode events handed to the fast path (not broadcasts).
	FastRouted uint64 `json:"fast_routed"`
	// BroadcastRouted counts broadcast events (both copies, one event id).
	BroadcastRouted uint64 `json:"broadcast_routed"`
	// FastOversized counts fast copies too big for NOTIFY, sent as references.
	FastOversized uint64 `json:"fast_oversized"`
	// FastNotified counts fast copies whose NOTIFY was sent (after-commit mode:
	// by the notifier; in-transaction mode: issued in the step transaction).
	FastNotified uint64 `json:"fast_notified"`
	// FastDeliveryErrors counts fast copies (fast or broadcast) that could not
	// be sent: notifier connection failures, overflow, or release after Close.
	// They never fail the step.
	FastDeliveryErrors uint64 `json:"fast_delivery_errors"`
	// RoutingErrors counts events that could not be routed: a publisher error,
	// an invalid emitted event, or a failed pgmq send.
	RoutingErrors uint64 `json:"routing_errors"`
	// Skipped counts declarations that produced no event, by reason.
	Skipped map[string]uint64 `json:"skipped"`
}

func (s *RouterStats) skip(reason string) {
	v, _ := s.skipped.LoadOrStore(reason, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// Snapshot copies the counters.
func (s *RouterStats) Snapshot() RouterStatsSnapshot {
	out := RouterStatsSnapshot{
		TotalRouted: s.totalRouted.Load(), DurableRouted: s.durableRouted.Load(), FastRouted: s.fastRouted.Load(),
		BroadcastRouted: s.broadcastRouted.Load(), FastOversized: s.fastOversized.Load(),
		FastNotified: s.fastNotified.Load(), FastDeliveryErrors: s.fastDeliveryErrors.Load(),
		RoutingErrors: s.routingErrors.Load(), Skipped: map[string]uint64{},
	}
	s.skipped.Range(func(k, v any) bool {
		out.Skipped[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	out.Skipped = maps.Clone(out.Skipped)
	return out
}
