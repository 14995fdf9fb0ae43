package security_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/examples/publishers"
)

// TestListenerRoleReceivesAndResolves: a member of stepevents_listener runs
// events.Listener: it receives the producer's signed fast events and
// fetches an oversized one from the stash.
func TestListenerRoleReceivesAndResolves(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := []byte("a key shared by publishers and listeners, never stored in the database")
	_, producer := e.newRole(t, "stepevents_producer")
	_, listener := e.newRole(t, "stepevents_listener")
	client := newClient(t, producer, events.Config{SigningKey: key})
	l, capture := listen(t, listener, events.ListenerConfig{SigningKey: key})

	_, steps := newTask(t, client, producer)
	big, err := json.Marshal(map[string]any{"order_id": "o-1", "validation_timestamp": "2026-11-28T10:00:00Z",
		"notes": strings.Repeat("x", 9000)})
	require.NoError(t, err)
	comp := startAndComplete(t, client, producer, steps[stepValidate], string(big))
	require.True(t, comp.Published[0].ByReference)
	ev, ok := capture.WaitForEvent("order.validated", waitTimeout)
	require.True(t, ok, "the oversized event never arrived")
	require.Equal(t, comp.Published[0].EventID, ev.EventID)
	require.JSONEq(t, string(big), string(ev.Payload.Payload))

	comp = startAndComplete(t, client, producer, steps[stepPayment], paymentResult)
	ev, ok = capture.WaitForEvent("payment.processed", waitTimeout)
	require.True(t, ok)
	require.Equal(t, comp.Published[0].EventID, ev.EventID)
	require.True(t, comp.Published[0].ByReference, "its dependency_results carry the big validate result")

	h := l.Health(e.ctx)
	require.Empty(t, h.QueueUsageError)
	require.Equal(t, uint64(2), h.RefsResolved)
	require.Zero(t, h.RefErrors+h.DroppedForged+h.DroppedMalformed)
}

// TestListenerRoleRefusedEverythingElse: the listener reads the stash and
// nothing else: no workflow table, no step function, no queue, and it
// cannot plant, change or delete stashed events. Each attempt fails with
// 42501 and changes nothing.
func TestListenerRoleRefusedEverythingElse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := newClient(t, e.admin, events.Config{})
	_, steps := newTask(t, admin, e.admin)
	startAndComplete(t, admin, e.admin, steps[stepValidate], validateResult)
	startAndComplete(t, admin, e.admin, steps[stepPayment], paymentResult)
	_, pool := e.newRole(t, "stepevents_listener")
	before := takeSnapshot(t, e.admin)

	_, err := pool.Exec(e.ctx, `SELECT event FROM stepevents.fast_event_stash`)
	require.NoError(t, err, "reading the stash is the listener's job")
	requireAllDenied(t, pool, []string{
		`SELECT * FROM stepevents.tasks`,
		`SELECT * FROM stepevents.workflow_steps`,
		`SELECT * FROM stepevents.event_declarations`,
		`SELECT stepevents.start_step(gen_random_uuid())`,
		`SELECT stepevents.record_step_result(gen_random_uuid(), true, '{}', NULL)`,
		`SELECT stepevents.emit_events('domain_events_domain_events', '{}', '{}', 'stepevents_events', '{}', '{}', '{}')`,
		`INSERT INTO stepevents.fast_event_stash (event_id, event) VALUES (gen_random_uuid(), '{"event_name":"payment.processed"}')`,
		`UPDATE stepevents.fast_event_stash SET event = '{}'`,
		`DELETE FROM stepevents.fast_event_stash`,
		`SELECT * FROM pgmq.q_domain_events_domain_events`,
		`SELECT * FROM pgmq.read('domain_events_domain_events', 30, 10)`,
		`SELECT * FROM pgmq.send('domain_events_domain_events', '{}'::jsonb)`,
		`SELECT * FROM pgmq.metrics('domain_events_domain_events')`,
	})
	_, err = events.StartStep(e.ctx, pool, steps[stepInventory])
	requireDenied(t, err, "events.StartStep as the listener")
	_, err = events.NewClient(e.ctx, pool, &events.Config{Publishers: publishers.All()})
	requireDenied(t, err, "events.NewClient as the listener")
	_, err = events.GetTask(e.ctx, pool, uuid.New())
	requireDenied(t, err, "events.GetTask as the listener")
	requireUnchanged(t, e.admin, before, "the listener's refused attempts")
}
