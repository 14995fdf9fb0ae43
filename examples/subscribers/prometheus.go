package subscribers

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepevents/stepevents/events"
)

// RouterStatser is what StatsCollector reads router counters from; an
// *events.Client satisfies it.
type RouterStatser interface {
	Stats() events.RouterStatsSnapshot
}

// BusStatser is what StatsCollector reads bus counters from; an
// *events.Bus satisfies it.
type BusStatser interface {
	Stats() events.BusStats
}

// StatsCollector is a prometheus.Collector exposing the publishing side
// (router) and the fast delivery side (bus) counters, read at scrape time
// so nothing is double-counted or goes stale. Label cardinality is bounded:
// delivery mode, skip reason, and subscription (id and pattern), never
// event or aggregate ids.
type StatsCollector struct {
	router RouterStatser
	bus    BusStatser

	routed, oversized, notified, fastErrors, routingErrors, skipped *prometheus.Desc

	published, rejected, dispatched, delivered, handlerErrors, panics, dropped, gaps *prometheus.Desc
	subDepth, subCapacity, subDelivered, subDropped                                  *prometheus.Desc
}

// NewStatsCollector returns a collector for router and bus; either may be
// nil to expose only the other.
func NewStatsCollector(router RouterStatser, bus BusStatser) *StatsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("stepevents_"+name, help, labels, nil)
	}
	return &StatsCollector{
		router:        router,
		bus:           bus,
		routed:        d("router_routed_total", "Events routed, by delivery mode (a broadcast counts once, as broadcast).", "mode"),
		oversized:     d("router_fast_oversized_total", "Fast copies too big for NOTIFY, sent as stash references."),
		notified:      d("router_fast_notified_total", "Fast copies whose NOTIFY was sent."),
		fastErrors:    d("router_fast_delivery_errors_total", "Fast copies that could not be sent."),
		routingErrors: d("router_routing_errors_total", "Events that could not be routed."),
		skipped:       d("router_skipped_total", "Declarations that produced no event, by reason.", "reason"),
		published:     d("bus_published_total", "Events published on the bus."),
		rejected:      d("bus_rejected_total", "Events published after the bus closed."),
		dispatched:    d("bus_dispatched_total", "Events placed in a subscription queue."),
		delivered:     d("bus_delivered_total", "Handler calls that returned nil."),
		handlerErrors: d("bus_handler_errors_total", "Handler calls that returned an error."),
		panics:        d("bus_handler_panics_total", "Handler calls that panicked (recovered)."),
		dropped:       d("bus_dropped_total", "Events a subscription lost (queue full, Block timeout, unsubscribe)."),
		gaps:          d("bus_gaps_total", "Gap signals published: listener reconnects, notifications the listener dropped when behind, and stashed events it could not fetch."),
		subDepth:      d("bus_subscriber_queue_depth", "Events waiting in a subscription's queue.", "subscriber", "pattern"),
		subCapacity:   d("bus_subscriber_queue_capacity", "Capacity of a subscription's queue.", "subscriber", "pattern"),
		subDelivered:  d("bus_subscriber_delivered_total", "Handler calls that returned nil, per subscription.", "subscriber", "pattern"),
		subDropped:    d("bus_subscriber_dropped_total", "Events lost, per subscription.", "subscriber", "pattern"),
	}
}

// Describe sends every metric description.
func (c *StatsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.routed, c.oversized, c.notified, c.fastErrors, c.routingErrors, c.skipped,
		c.published, c.rejected, c.dispatched, c.delivered, c.handlerErrors, c.panics, c.dropped, c.gaps,
		c.subDepth, c.subCapacity, c.subDelivered, c.subDropped} {
		ch <- d
	}
}

// Collect reads the current counters.
func (c *StatsCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	if c.router != nil {
		r := c.router.Stats()
		counter(c.routed, r.DurableRouted, "durable")
		counter(c.routed, r.FastRouted, "fast")
		counter(c.routed, r.BroadcastRouted, "broadcast")
		counter(c.oversized, r.FastOversized)
		counter(c.notified, r.FastNotified)
		counter(c.fastErrors, r.FastDeliveryErrors)
		counter(c.routingErrors, r.RoutingErrors)
		for reason, n := range r.Skipped {
			counter(c.skipped, n, reason)
		}
	}
	if c.bus != nil {
		b := c.bus.Stats()
		counter(c.published, b.Published)
		counter(c.rejected, b.Rejected)
		counter(c.dispatched, b.Dispatched)
		counter(c.delivered, b.Delivered)
		counter(c.handlerErrors, b.HandlerErrors)
		counter(c.panics, b.Panics)
		counter(c.dropped, b.Dropped)
		counter(c.gaps, b.Gaps)
		for _, s := range b.Subscribers {
			id := strconv.FormatUint(s.ID, 10)
			gauge(c.subDepth, s.QueueDepth, id, s.Pattern)
			gauge(c.subCapacity, s.QueueCapacity, id, s.Pattern)
			counter(c.subDelivered, s.Delivered, id, s.Pattern)
			counter(c.subDropped, s.Dropped, id, s.Pattern)
		}
	}
}
