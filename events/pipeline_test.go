package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// CompleteStep sends BEGIN with record_step_result and COMMIT with
// emit_events. A failure of either statement leaves nothing behind: the
// step as it was, no queue row, no transaction left open, and the next
// completion works.
func TestCompleteStepOwnTransactionFailures(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, steps := b.newTask(t)
	b.complete(t, steps[stepValidate], validResult)
	payment := steps[stepPayment]
	result := json.RawMessage(`{"transaction_id":"txn-1","amount":42.5}`)

	openTx := func() int {
		var n int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&n))
		return n
	}
	state := func() string {
		s, err := events.GetStep(b.ctx, b.pool, payment)
		require.NoError(t, err)
		return string(s.State)
	}

	// The first statement fails (the step was never started).
	_, err := b.client.CompleteStep(b.ctx, payment, result)
	require.ErrorIs(t, err, events.ErrIllegalTransition)
	require.Equal(t, "pending", state())
	require.Zero(t, openTx())

	// The last statement fails (the queue is gone): the COMMIT queued
	// after it never runs.
	b.start(t, payment)
	_, err = b.pool.Exec(b.ctx, `ALTER TABLE pgmq.q_domain_events_domain_events RENAME TO q_hidden`)
	require.NoError(t, err)
	_, err = b.client.CompleteStep(b.ctx, payment, result)
	require.ErrorIs(t, err, events.ErrQueueMissing)
	require.Equal(t, "in_progress", state())
	require.Zero(t, openTx())

	_, err = b.pool.Exec(b.ctx, `ALTER TABLE pgmq.q_hidden RENAME TO q_domain_events_domain_events`)
	require.NoError(t, err)
	comp, err := b.client.CompleteStep(b.ctx, payment, result)
	require.NoError(t, err)
	require.Equal(t, "complete", state())
	require.Zero(t, openTx())
	rows := b.queueRows(t)
	require.Equal(t, []string{"payment.processed"}, names(rows))
	require.Len(t, comp.Published, 1)
	require.Equal(t, rows[0].MsgID, comp.Published[0].MsgID, "msg ids come back through the pipelined batch")
}

// A completion cancelled at any point either committed or left nothing,
// and never leaves a transaction open on a pooled connection.
func TestCompleteStepCancelledAnywhere(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for i := range 30 {
		_, steps := b.newTask(t)
		b.complete(t, steps[stepValidate], validResult)
		payment := steps[stepPayment]
		b.start(t, payment)
		ctx, cancel := context.WithTimeout(b.ctx, time.Duration(i*100)*time.Microsecond)
		comp, err := b.client.CompleteStep(ctx, payment, json.RawMessage(`{"transaction_id":"txn-1","amount":42.5}`))
		cancel()
		// One snapshot for both: a COMMIT already sent when the context
		// was cancelled may still land between two separate reads.
		var state string
		var queued int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT s.state, (SELECT count(*) FROM pgmq.q_domain_events_domain_events
			WHERE message->'metadata'->>'step_uuid' = $1)
			FROM stepevents.workflow_steps s WHERE s.step_uuid = $1::uuid`, payment.String()).Scan(&state, &queued))
		switch state {
		case "complete":
			require.Equal(t, 1, queued, "a committed completion has its durable event")
		case "in_progress":
			require.Error(t, err)
			require.Nil(t, comp)
			require.Zero(t, queued, "a completion that did not commit sent nothing")
		default:
			t.Fatalf("step is %s after a cancelled completion", state)
		}
		if err == nil {
			require.Equal(t, "complete", state)
		}
	}
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&n))
		return n == 0
	}, 5*time.Second, 20*time.Millisecond, "a transaction was left open")
}
