package consumer_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/consumer"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/test/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

const (
	fixturePath = "../../test/templates/good/domain_event_publishing.yaml"
	namespace   = "domain_events"
	queue       = "domain_events_domain_events"
	queueTable  = "pgmq.q_domain_events_domain_events"
	dlqTable    = "pgmq.q_domain_events_domain_events_dlq"
	archive     = "pgmq.a_domain_events_domain_events"
)

// setup gives a test its own database with the seed fixture applied, so
// the namespace's queue and DLQ exist.
func setup(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := testdb.New(t)
	tpl, err := template.LoadFile(fixturePath)
	require.NoError(t, err)
	require.NoError(t, events.ApplyTemplate(context.Background(), pool, tpl))
	return pool
}

func newConsumer(t *testing.T, pool *pgxpool.Pool, cfg consumer.Config) *consumer.Consumer {
	t.Helper()
	if cfg.Namespace == "" {
		cfg.Namespace = namespace
	}
	c, err := consumer.New(pool, cfg)
	require.NoError(t, err)
	return c
}

// newEvent builds an event shaped like the ones stepevents publishes.
func newEvent(name string) events.Event {
	return events.Event{EventID: uuid.New(), EventName: name, EventVersion: events.EventVersion,
		Payload: events.EventPayload{Payload: json.RawMessage(`{"order_id":"o-1"}`)},
		Metadata: events.EventMetadata{TaskUUID: uuid.New(), StepUUID: uuid.New(), StepName: "s",
			Namespace: namespace, FiredAt: time.Now().UTC()}}
}

// send enqueues ev with headers straight through pgmq.send, as the
// publishing SQL would.
func send(t *testing.T, pool *pgxpool.Pool, ev any, headers map[string]any) int64 {
	t.Helper()
	msg, err := json.Marshal(ev)
	require.NoError(t, err)
	hdr, err := json.Marshal(headers)
	require.NoError(t, err)
	var id int64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT pgmq.send($1::text, $2::jsonb, $3::jsonb)`,
		queue, msg, hdr).Scan(&id))
	return id
}

func count(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n))
	return n
}

// processUntil calls ProcessOnce until done says the accumulated result is
// enough, or fails after the deadline. Waiting out a visibility timeout is
// polling with a deadline, not a sleep.
func processUntil(t *testing.T, c *consumer.Consumer, h consumer.HandlerFunc, deadline time.Duration,
	done func(consumer.Result) bool) consumer.Result {
	t.Helper()
	ctx := context.Background()
	var total consumer.Result
	require.Eventually(t, func() bool {
		r, err := c.ProcessOnce(ctx, h)
		require.NoError(t, err)
		total.Read += r.Read
		total.Handled += r.Handled
		total.Duplicates += r.Duplicates
		total.Failed += r.Failed
		total.DeadLettered += r.DeadLettered
		total.Released += r.Released
		total.Expired += r.Expired
		return done(total)
	}, deadline, 50*time.Millisecond)
	return total
}
