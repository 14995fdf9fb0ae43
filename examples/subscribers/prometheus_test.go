package subscribers_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/examples/subscribers"
)

// only is a collector forwarding the one metric of c named name with
// these label values, so testutil.ToFloat64 can read it.
func only(c prometheus.Collector, name string, labelValues ...string) prometheus.Collector {
	return filtered{c: c, keep: func(m prometheus.Metric) bool {
		if !strings.Contains(m.Desc().String(), `fqName: "`+name+`"`) {
			return false
		}
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			return false
		}
		if len(pb.GetLabel()) != len(labelValues) {
			return false
		}
		for i, l := range pb.GetLabel() {
			if l.GetValue() != labelValues[i] {
				return false
			}
		}
		return true
	}}
}

type filtered struct {
	c    prometheus.Collector
	keep func(prometheus.Metric) bool
}

func (f filtered) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }

func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() {
		f.c.Collect(all)
		close(all)
	}()
	for m := range all {
		if f.keep(m) {
			ch <- m
		}
	}
}

type fakeRouter struct{ s events.RouterStatsSnapshot }

func (f fakeRouter) Stats() events.RouterStatsSnapshot { return f.s }

func TestStatsCollector(t *testing.T) {
	t.Parallel()
	router := fakeRouter{events.RouterStatsSnapshot{TotalRouted: 6, DurableRouted: 3, FastRouted: 2, BroadcastRouted: 1,
		FastOversized: 1, FastNotified: 3, FastDeliveryErrors: 0, RoutingErrors: 2,
		Skipped: map[string]uint64{events.SkipConditionNotMet: 4}}}
	bus := events.NewBus(events.BusConfig{})
	defer func() { _, _ = bus.Close(context.Background()) }()
	release := make(chan struct{})
	_, err := bus.Subscribe("payment.*", func(ctx context.Context, ev events.Event) error {
		<-release
		return errors.New("nope")
	}, events.WithQueueSize(4))
	require.NoError(t, err)
	for range 3 {
		bus.Publish(event("payment.processed", true))
	}

	c := subscribers.NewStatsCollector(router, bus)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	_, err = reg.Gather() // the pedantic registry checks metrics against their descriptions
	require.NoError(t, err)
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
	// 3 routed modes + oversized, notified, fast errors, routing errors + 1 skip reason,
	// 8 bus totals, 4 per subscription.
	require.Equal(t, 8+8+4, testutil.CollectAndCount(c))
	require.Equal(t, 3.0, testutil.ToFloat64(only(c, "stepevents_router_routed_total", "durable")))
	require.Equal(t, 2.0, testutil.ToFloat64(only(c, "stepevents_router_routing_errors_total")))
	require.Equal(t, 4.0, testutil.ToFloat64(only(c, "stepevents_router_skipped_total", events.SkipConditionNotMet)))
	require.Equal(t, 3.0, testutil.ToFloat64(only(c, "stepevents_bus_published_total")))
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP stepevents_bus_subscriber_queue_capacity Capacity of a subscription's queue.
# TYPE stepevents_bus_subscriber_queue_capacity gauge
stepevents_bus_subscriber_queue_capacity{pattern="payment.*",subscriber="1"} 4
`), "stepevents_bus_subscriber_queue_capacity"))

	close(release)
	_, err = bus.Close(context.Background())
	require.NoError(t, err)
	require.Equal(t, 3.0, testutil.ToFloat64(only(c, "stepevents_bus_handler_errors_total")))
	require.Equal(t, 8+8, testutil.CollectAndCount(c), "closed subscriptions leave the per-subscription series")

	require.Equal(t, 4, testutil.CollectAndCount(subscribers.NewStatsCollector(nil, bus),
		"stepevents_bus_published_total", "stepevents_bus_dropped_total", "stepevents_bus_delivered_total", "stepevents_bus_gaps_total"))
}
