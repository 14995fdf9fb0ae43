package consumer_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/consumer"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/test/testdb"
)

// BenchmarkConsume measures consuming queued events (about 300 bytes each)
// with a handler that does nothing: per event, its share of one batched
// pgmq.read plus one pgmq.delete (or archive) round trip.
func BenchmarkConsume(b *testing.B) {
	for _, bc := range []struct {
		name    string
		batch   int
		archive bool
	}{{"batch=1", 1, false}, {"batch=100", 100, false}, {"batch=100/archive", 100, true}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			pool := testdb.New(b)
			tpl, err := template.LoadFile(fixturePath)
			require.NoError(b, err)
			require.NoError(b, events.ApplyTemplate(ctx, pool, tpl))
			_, err = pool.Exec(ctx, `SELECT pgmq.send_batch($1::text, array_agg(jsonb_build_object(
				'event_id', gen_random_uuid(), 'event_name', 'order.shipped', 'event_version', '1.0',
				'payload', jsonb_build_object('payload', jsonb_build_object('order_id', gen_random_uuid())),
				'metadata', jsonb_build_object('task_uuid', gen_random_uuid(), 'step_uuid', gen_random_uuid(),
					'step_name', 'ship', 'namespace', 'domain_events'))))
				FROM generate_series(1, $2::integer)`, queue, b.N)
			require.NoError(b, err)
			c, err := consumer.New(pool, consumer.Config{Namespace: namespace, BatchSize: bc.batch, Archive: bc.archive})
			require.NoError(b, err)
			h := func(context.Context, events.Event, consumer.Delivery) error { return nil }
			b.ResetTimer()
			for c.Stats().Handled < b.N {
				_, err := c.ProcessOnce(ctx, h)
				require.NoError(b, err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
