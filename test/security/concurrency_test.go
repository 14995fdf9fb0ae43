package security_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// TestConcurrentCompletionExactlyOnce: two goroutines complete the same
// step at once, for many steps: exactly one succeeds for each, the other
// gets ErrIllegalTransition, and each step has exactly one set of events
// (durable and fast), built from the winner's result.
func TestConcurrentCompletionExactlyOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := newClient(t, e.admin, events.Config{})
	_, capture := listen(t, e.admin, events.ListenerConfig{})
	const tasks = 20
	var payments []uuid.UUID
	for range tasks {
		_, steps := newTask(t, client, e.admin)
		startAndComplete(t, client, e.admin, steps[stepValidate], validateResult)
		_, err := events.StartStep(e.ctx, e.admin, steps[stepPayment])
		require.NoError(t, err)
		payments = append(payments, steps[stepPayment])
	}

	type outcome struct {
		comp *events.Completion
		err  error
		txn  string
	}
	results := make([][2]outcome, tasks)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i, step := range payments {
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				txn := fmt.Sprintf("txn-%d-worker-%d", i, w)
				<-gate
				comp, err := client.CompleteStep(context.Background(), step, json.RawMessage(`{"transaction_id":"`+txn+`"}`))
				results[i][w] = outcome{comp, err, txn}
			}()
		}
	}
	close(gate)
	wg.Wait()

	winners := map[uuid.UUID]string{} // event id -> winning transaction id
	for i, pair := range results {
		var won []outcome
		for _, o := range pair {
			if o.err == nil {
				won = append(won, o)
			} else {
				require.ErrorIs(t, o.err, events.ErrIllegalTransition, "the loser of step %d", i)
			}
		}
		require.Len(t, won, 1, "step %d: exactly one completion succeeds", i)
		require.Len(t, won[0].comp.Published, 1)
		winners[won[0].comp.Published[0].EventID] = won[0].txn
		requireOneCompletion(t, e, payments[i])
		var stored string
		require.NoError(t, e.admin.QueryRow(e.ctx, `SELECT results->>'transaction_id' FROM stepevents.workflow_steps
			WHERE step_uuid = $1`, payments[i]).Scan(&stored))
		require.Equal(t, won[0].txn, stored, "step %d stores the winner's result", i)
	}

	rows, err := e.admin.Query(e.ctx, `SELECT message FROM pgmq.q_domain_events_domain_events ORDER BY msg_id`)
	require.NoError(t, err)
	durable := map[uuid.UUID]int{}
	for rows.Next() {
		var ev events.Event
		var raw []byte
		require.NoError(t, rows.Scan(&raw))
		require.NoError(t, json.Unmarshal(raw, &ev))
		require.Equal(t, "payment.processed", ev.EventName)
		durable[ev.EventID]++
		var p struct {
			TransactionID string `json:"transaction_id"`
		}
		require.NoError(t, json.Unmarshal(ev.Payload.Payload, &p))
		require.Equal(t, winners[ev.EventID], p.TransactionID, "the durable event carries the winner's result")
	}
	require.NoError(t, rows.Err())
	require.Len(t, durable, tasks)
	for id, n := range durable {
		require.Equal(t, 1, n, "durable copies of %s", id)
		require.Contains(t, winners, id)
	}

	// After-commit fast events leave asynchronously through the notifier:
	// wait for every winner's, then prove nothing else follows.
	require.Eventually(t, func() bool { return countNamed(capture.Events(), "payment.processed") >= tasks },
		waitTimeout, 10*time.Millisecond)
	barrier(t, e.admin, capture, nil)
	fast := map[uuid.UUID]int{}
	for _, ev := range capture.Events() {
		if ev.EventName == "payment.processed" {
			fast[ev.EventID]++
		}
	}
	require.Len(t, fast, tasks)
	for id, n := range fast {
		require.Equal(t, 1, n, "fast copies of %s", id)
		require.Contains(t, winners, id)
	}
}

// TestCompletionWaitsForConcurrentCompletion forces the interleaving: a
// second completion blocks on the step row lock held by a first one still
// in its transaction; when the first commits, the second fails with
// ErrIllegalTransition; when the first rolls back, the second succeeds.
// Either way exactly one set of events exists, the committed one's.
func TestCompletionWaitsForConcurrentCompletion(t *testing.T) {
	t.Parallel()
	for _, commitFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("first commits %t", commitFirst), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			client := newClient(t, e.admin, events.Config{})
			_, capture := listen(t, e.admin, events.ListenerConfig{})
			_, steps := newTask(t, client, e.admin)
			startAndComplete(t, client, e.admin, steps[stepValidate], validateResult)
			step := steps[stepPayment]
			_, err := events.StartStep(e.ctx, e.admin, step)
			require.NoError(t, err)

			tx, err := e.admin.Begin(e.ctx)
			require.NoError(t, err)
			first, err := client.CompleteStepTx(e.ctx, tx, step, json.RawMessage(`{"transaction_id":"first"}`))
			require.NoError(t, err)
			type outcome struct {
				comp *events.Completion
				err  error
			}
			second := make(chan outcome, 1)
			go func() {
				comp, err := client.CompleteStep(context.Background(), step, json.RawMessage(`{"transaction_id":"second"}`))
				second <- outcome{comp, err}
			}()
			waitForLockWait(t, e)
			if commitFirst {
				require.NoError(t, tx.Commit(e.ctx))
				client.ReleaseFast(first)
			} else {
				require.NoError(t, tx.Rollback(e.ctx))
			}
			var got outcome
			select {
			case got = <-second:
			case <-time.After(waitTimeout):
				t.Fatal("the second completion never returned")
			}
			winner := first
			if commitFirst {
				require.ErrorIs(t, got.err, events.ErrIllegalTransition)
			} else {
				require.NoError(t, got.err)
				winner = got.comp
			}

			requireOneCompletion(t, e, step)
			require.Equal(t, []string{"payment.processed"}, e.queueNames(t, "q_"+queue))
			fastIDs := func() []uuid.UUID {
				var fast []uuid.UUID
				for _, ev := range capture.Events() {
					if ev.EventName == "payment.processed" {
						fast = append(fast, ev.EventID)
					}
				}
				return fast
			}
			// After-commit fast events leave asynchronously through the
			// notifier: wait for the winner's, then prove nothing else follows.
			require.Eventually(t, func() bool { return len(fastIDs()) > 0 }, waitTimeout, 10*time.Millisecond)
			barrier(t, e.admin, capture, nil)
			require.Equal(t, []uuid.UUID{winner.Published[0].EventID}, fastIDs())
		})
	}
}

// waitForLockWait waits until some session of the test database is waiting
// for a lock: the second completion is blocked on the step row.
func waitForLockWait(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var waiting int
		require.NoError(t, e.admin.QueryRow(e.ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting))
		if waiting > 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "no session ever waited for the step lock")
		time.Sleep(5 * time.Millisecond) // polling a condition until a deadline, not synchronising on time
	}
}
