package eventstest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/eventstest"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/test/testdb"
)

const ns = "domain_events"

// published runs the fixture's first three steps: payment.processed
// (broadcast) and inventory.updated (durable) reach the queue;
// order.validated is fast only.
func published(t *testing.T) (*eventstest.DurableEventCapture, *pgxpool.Pool, context.Context) {
	t.Helper()
	ctx := context.Background()
	pool := testdb.New(t)
	tpl, err := template.LoadFile("../../test/templates/good/domain_event_publishing.yaml")
	require.NoError(t, err)
	require.NoError(t, events.ApplyTemplate(ctx, pool, tpl))
	client, err := events.NewClient(ctx, pool, &events.Config{Publishers: publishers.All()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close(context.Background())) })
	in, err := json.Marshal(map[string]any{"order_id": uuid.NewString(), "customer_id": "c-1", "amount": 10})
	require.NoError(t, err)
	task, err := client.CreateTask(ctx, events.CreateTaskParams{Namespace: ns, Name: "domain_event_publishing", Context: in})
	require.NoError(t, err)
	steps, err := events.TaskSteps(ctx, pool, task)
	require.NoError(t, err)
	results := []string{
		`{"order_id":"o-1","validation_timestamp":"2025-01-01T00:00:00Z"}`,
		`{"transaction_id":"txn-1","amount":10}`,
		`{"order_id":"o-1","items_reserved":2}`,
	}
	for i, r := range results {
		_, err := events.StartStep(ctx, pool, steps[i].StepUUID)
		require.NoError(t, err)
		_, err = client.CompleteStep(ctx, steps[i].StepUUID, json.RawMessage(r))
		require.NoError(t, err)
	}
	return eventstest.NewDurableEventCapture(pool), pool, ctx
}

func TestDurableEventCapture(t *testing.T) {
	t.Parallel()
	c, _, ctx := published(t)

	evs, err := c.Events(ctx, ns)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, "payment.processed", evs[0].Event.EventName)
	require.Equal(t, "inventory.updated", evs[1].Event.EventName)
	require.Equal(t, "payment.processed", evs[0].Headers["event_name"])
	require.Less(t, evs[0].MsgID, evs[1].MsgID)
	require.Equal(t, []int64{evs[0].MsgID, evs[1].MsgID}, c.Tracked(ns))
	n, err := c.Count(ctx, ns)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	got := c.RequirePublished(t, ns, "inventory.updated")
	require.Equal(t, evs[1].MsgID, got.MsgID)
	c.RequireNotPublished(t, ns, "order.validated")

	w, err := c.WaitFor(ctx, ns, "payment.processed", time.Second)
	require.NoError(t, err)
	require.Equal(t, evs[0].MsgID, w.MsgID)
}

func TestDurableEventCaptureFailures(t *testing.T) {
	t.Parallel()
	c, _, ctx := published(t)

	m := &mockT{}
	c.RequirePublished(m, ns, "order.validated")
	require.Equal(t, `stepevents assertion failure: expected event "order.validated" in the queue of namespace "domain_events", but it was not published; published 2: [payment.processed (msg 1), inventory.updated (msg 2)]`, m.String())

	m = &mockT{}
	c.RequireNotPublished(m, ns, "payment.processed")
	require.Equal(t, `stepevents assertion failure: expected no event "payment.processed" in the queue of namespace "domain_events", but found 1: [payment.processed (msg 1)]`, m.String())

	m = &mockT{}
	c.RequirePublished(m, "Domain_Events", "payment.processed")
	require.Contains(t, m.String(), `stepevents internal failure: eventstest: namespace "Domain_Events" must be lower case`)

	m = &mockT{}
	c.RequirePublished(m, "nosuchns", "payment.processed")
	require.Contains(t, m.String(), `stepevents internal failure: eventstest: error listing queue "pgmq"."q_nosuchns_domain_events"`)

	_, err := c.WaitFor(ctx, ns, "order.validated", 50*time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, `event "order.validated" not published in namespace "domain_events" within 50ms; published 2: [payment.processed (msg 1), inventory.updated (msg 2)]`)
}

// TestDurableEventCaptureIgnoresVisibility: a message a consumer has read
// (so invisible to pgmq.read until its vt) is still listed.
func TestDurableEventCaptureIgnoresVisibility(t *testing.T) {
	t.Parallel()
	c, pool, ctx := published(t)
	evs, err := c.Events(ctx, ns)
	require.NoError(t, err)
	var readID int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT msg_id FROM pgmq.read($1, 300, 1)`, ns+eventstest.QueueSuffix).Scan(&readID))
	require.Equal(t, evs[0].MsgID, readID)

	after, err := c.Events(ctx, ns)
	require.NoError(t, err)
	require.Len(t, after, 2)
	require.Equal(t, 1, after[0].ReadCount)
	require.True(t, after[0].VT.After(time.Now().Add(time.Minute)))
}

func TestDurableEventCaptureCleanupTracked(t *testing.T) {
	t.Parallel()
	c, pool, ctx := published(t)
	evs, err := c.Events(ctx, ns)
	require.NoError(t, err)
	var consumed bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT pgmq.delete($1::text, $2::bigint)`, ns+eventstest.QueueSuffix, evs[0].MsgID).Scan(&consumed))
	require.True(t, consumed, "a consumer acknowledged the first message")

	res, err := c.CleanupTracked(ctx, ns, nil)
	require.NoError(t, err)
	require.Equal(t, eventstest.CleanupResult{Deleted: 1, Failed: 1}, res)
	require.Empty(t, c.Tracked(ns))
	n, err := c.Count(ctx, ns)
	require.NoError(t, err)
	require.Zero(t, n)

	_, err = c.CleanupTracked(ctx, "Bad", []int64{1})
	require.ErrorContains(t, err, "must be lower case")
}
