package fault_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

// TestTerminatedCompletionChangesNothing terminates the backend of a
// step-completion transaction after CompleteStepTx has recorded the result
// and sent the events, before commit. The commit fails with a connection
// error, and the transaction left nothing behind: the step, its history and
// its task are unchanged, the durable copy is not in pgmq and the fast copy
// never arrives (a sentinel sent afterwards arrives first). Retrying on a
// fresh connection then succeeds with one new set of events.
func TestTerminatedCompletionChangesNothing(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name string
		mode events.FastMode
	}{{"after_commit", events.FastAfterCommit}, {"in_transaction", events.FastInTransaction}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testTerminatedCompletion(t, mode.mode)
		})
	}
}

func testTerminatedCompletion(t *testing.T, mode events.FastMode) {
	f := newFixture(t)
	client := f.newClient(t, f.pool, mode)
	_, capture := f.listen(t, f.pool)
	o, err := newOrder(f.ctx, f.pool)
	require.NoError(t, err)

	// Validate normally: the fast path works end to end.
	_, err = events.StartStep(f.ctx, f.pool, o.steps[stepValidate])
	require.NoError(t, err)
	_, err = client.CompleteStep(f.ctx, o.steps[stepValidate], resultFor(stepValidate, o.id))
	require.NoError(t, err)
	_, ok := capture.WaitForEvent("order.validated", waitTimeout)
	require.True(t, ok)

	// payment.processed is broadcast: a durable and a fast copy.
	payment := o.steps[stepPayment]
	_, err = events.StartStep(f.ctx, f.pool, payment)
	require.NoError(t, err)
	before := f.snapshot(t, payment)

	var aborted *events.Completion
	err = client.InTx(f.ctx, func(ctx context.Context, tx pgx.Tx) error {
		var pid uint32
		require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
		var err error
		aborted, err = client.CompleteStepTx(ctx, tx, payment, resultFor(stepPayment, o.id))
		require.NoError(t, err)
		require.Len(t, aborted.Published, 1)
		require.Equal(t, template.DeliveryBroadcast, aborted.Published[0].Mode)
		require.NotZero(t, aborted.Published[0].MsgID, "the durable copy was sent inside the transaction")
		require.NoError(t, terminate(ctx, f.pool, pid))
		return nil // InTx commits now, on a dead connection
	})
	require.Error(t, err)
	require.True(t, isConnectionError(err), "want a connection error the caller can retry, got %T: %v", err, err)

	require.Equal(t, before, f.snapshot(t, payment), "the terminated transaction changed the step")
	require.Empty(t, f.queuedEventIDs(t), "the terminated transaction left a durable event")
	// Whatever the aborted transaction had notified has arrived by now.
	f.sentinel(t, capture)
	capture.RequireNotCaptured(t, "payment.processed")

	retried, err := client.CompleteStep(f.ctx, payment, resultFor(stepPayment, o.id))
	require.NoError(t, err, "retrying on a fresh connection")
	require.Equal(t, "complete", retried.Step.State)
	require.Equal(t, 1, retried.Step.Attempts, "the aborted completion did not use an attempt")
	require.Len(t, retried.Published, 1)
	id := retried.Published[0].EventID
	require.NotEqual(t, aborted.Published[0].EventID, id)
	require.Equal(t, map[uuid.UUID]int{id: 1}, f.queuedEventIDs(t))
	// The retry's fast copy is the client-side sentinel: the notifier sends
	// in release order, so a fast copy the aborted transaction had released
	// would arrive before it.
	ev, ok := capture.WaitForEvent("payment.processed", waitTimeout)
	require.True(t, ok)
	require.Equal(t, id, ev.EventID, "the first payment.processed to arrive is the retry's")
	f.sentinel(t, capture)
	require.Len(t, eventsNamed(capture.Events(), "payment.processed"), 1)
}

// snapshot is a step's row, its transition history and its task's row, as
// text, to compare before and after a fault.
func (f *fixture) snapshot(t *testing.T, step uuid.UUID) [3]string {
	t.Helper()
	var s [3]string
	require.NoError(t, f.pool.QueryRow(f.ctx, `
		SELECT row_to_json(s)::text,
		       (SELECT json_agg(tr ORDER BY tr.sort_key)::text FROM stepevents.workflow_step_transitions tr
		        WHERE tr.step_uuid = s.step_uuid),
		       (SELECT row_to_json(t)::text FROM stepevents.tasks t WHERE t.task_uuid = s.task_uuid)
		FROM stepevents.workflow_steps s WHERE s.step_uuid = $1`, step).Scan(&s[0], &s[1], &s[2]))
	return s
}

func eventsNamed(evs []events.Event, name string) []events.Event {
	var out []events.Event
	for _, ev := range evs {
		if ev.EventName == name {
			out = append(out, ev)
		}
	}
	return out
}
