package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"errors"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

// sentinel publishes a fast event on another task, so a test can show that
// nothing arrived before it.
func (b *bundle) sentinel(t *testing.T) uuid.UUID {
	t.Helper()
	_, steps := b.newTask(t)
	b.complete(t, steps[stepValidate], `{"order_id":"s","validation_timestamp":"2026-11-28T00:00:00Z"}`)
	return steps[stepValidate]
}

const validResult = `{"order_id":"o-1","validation_timestamp":"2026-11-28T10:00:00Z"}`

func TestHappyPathPublishesEveryDeclaredEvent(t *testing.T) {
	t.Parallel()
	for _, mode := range []events.FastMode{events.FastAfterCommit, events.FastInTransaction} {
		b := setup(t, &events.Config{FastMode: mode})
		l := b.listen(t)
		task, steps := b.newTask(t)

		comps := []*events.Completion{
			b.complete(t, steps[stepValidate], validResult),
			b.complete(t, steps[stepPayment], `{"transaction_id":"txn-9","amount":42.5}`),
			b.complete(t, steps[stepInventory], `{"order_id":"o-1","items_reserved":2}`),
			b.complete(t, steps[stepNotify], `{"channel":"sms"}`),
		}
		want := [][]string{{"order.validated"}, {"payment.processed"}, {"inventory.updated"}, {"notification.sent"}}
		for i, c := range comps {
			var got []string
			for _, p := range c.Published {
				got = append(got, p.Name)
			}
			require.Equal(t, want[i], got)
			if i == 1 {
				require.Equal(t, []string{"payment.failed.retryable", "payment.failed.permanent"}, skippedNames(c))
			} else {
				require.Empty(t, c.Skipped)
			}
			require.Empty(t, c.Errors)
		}

		// Durable copies: broadcast and durable events, in order, exactly.
		rows := b.queueRows(t)
		require.Equal(t, []string{"payment.processed", "inventory.updated", "notification.sent"}, names(rows))
		for _, r := range rows {
			require.Equal(t, r.Event.EventName, r.Headers["event_name"])
			require.Equal(t, r.Event.EventID.String(), r.Headers["event_id"])
			require.Equal(t, events.EventVersion, r.Event.EventVersion)
			require.Equal(t, task, r.Event.Metadata.TaskUUID)
			require.Equal(t, "domain_events", r.Event.Metadata.Namespace)
			require.Equal(t, uuid.Version(7), r.Event.EventID.Version())
			var top map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(r.Raw, &top))
			require.ElementsMatch(t, []string{"event_id", "event_name", "event_version", "payload", "metadata"}, keys(top))
			var payload, meta map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(top["payload"], &payload))
			require.NoError(t, json.Unmarshal(top["metadata"], &meta))
			require.ElementsMatch(t, []string{"execution_result", "payload", "task_sequence_step"}, keys(payload))
			require.ElementsMatch(t, []string{"task_uuid", "step_uuid", "step_name", "namespace", "correlation_id", "fired_at", "fired_by"}, keys(meta))
		}
		require.Equal(t, "PaymentEventPublisher", rows[0].Event.Metadata.FiredBy)
		require.Equal(t, comps[1].Published[0].MsgID, rows[0].MsgID)
		var pay map[string]any
		require.NoError(t, json.Unmarshal(rows[0].Event.Payload.Payload, &pay))
		require.Equal(t, "txn-9", pay["transaction_id"])
		require.Equal(t, "USD", pay["currency"])
		require.Equal(t, "standard", pay["customer_tier"], "the custom publisher enriched the payload")

		// Fast copies: fast and broadcast events; broadcast shares its id.
		fast := l.collect(t, 3)
		require.Equal(t, []string{"order.validated", "payment.processed", "notification.sent"}, eventNames(fast))
		require.Equal(t, rows[0].Event.EventID, fast[1].EventID, "one event id for both copies of a broadcast")
		require.Equal(t, rows[2].Event.EventID, fast[2].EventID)
		require.Equal(t, comps[0].Published[0].EventID, fast[0].EventID)

		task2, err := events.GetTask(b.ctx, b.pool, task)
		require.NoError(t, err)
		require.Equal(t, "complete", task2.State)

		st := b.client.Stats()
		require.Equal(t, uint64(4), st.TotalRouted)
		require.Equal(t, uint64(1), st.DurableRouted)
		require.Equal(t, uint64(1), st.FastRouted)
		require.Equal(t, uint64(2), st.BroadcastRouted)
		require.Zero(t, st.RoutingErrors)
		require.Equal(t, map[string]uint64{events.SkipConditionNotMet: 2}, st.Skipped)
		require.Eventually(t, func() bool { return b.client.Stats().FastNotified == 3 }, 5*time.Second, 10*time.Millisecond)
	}
}

func failPayment(t *testing.T, b *bundle, steps map[string]uuid.UUID, f events.Failure) *events.Completion {
	t.Helper()
	b.complete(t, steps[stepValidate], validResult)
	b.start(t, steps[stepPayment])
	comp, err := b.client.FailStep(b.ctx, steps[stepPayment], f)
	require.NoError(t, err)
	return comp
}

func TestRetryableFailureFiresOnlyRetryable(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	l := b.listen(t)
	_, steps := b.newTask(t)
	comp := failPayment(t, b, steps, events.Failure{Message: "gateway timeout", Code: "TIMEOUT"})

	require.Equal(t, "waiting_for_retry", comp.Step.State)
	require.True(t, *comp.IsRetryable)
	require.Len(t, comp.Published, 1)
	require.Equal(t, "payment.failed.retryable", comp.Published[0].Name)
	require.ElementsMatch(t, []string{"payment.processed", "payment.failed.permanent"}, skippedNames(comp))

	fast := l.collect(t, 2)
	require.Equal(t, []string{"order.validated", "payment.failed.retryable"}, eventNames(fast))
	var p events.StepError
	require.NoError(t, json.Unmarshal(fast[1].Payload.Payload, &p))
	require.Equal(t, events.StepError{Message: "gateway timeout", Code: "TIMEOUT", Retryable: true, Attempt: 1, MaxAttempts: 3}, p)
	require.Empty(t, b.queueRows(t), "no durable failure event for a retryable failure")
}

func TestPermanentFailureFiresOnlyPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	l := b.listen(t)
	_, steps := b.newTask(t)
	comp := failPayment(t, b, steps, events.Failure{Message: "card declined", Code: "CARD_DECLINED", Permanent: true})

	require.Equal(t, "error", comp.Step.State)
	require.False(t, *comp.IsRetryable)
	rows := b.queueRows(t)
	require.Equal(t, []string{"payment.failed.permanent"}, names(rows))
	require.Equal(t, rows[0].MsgID, comp.Published[0].MsgID)
	require.ElementsMatch(t, []string{"payment.processed", "payment.failed.retryable"}, skippedNames(comp))

	// Only order.validated went fast; the sentinel proves nothing else did.
	b.sentinel(t)
	fast := l.collect(t, 2)
	require.Equal(t, []string{"order.validated", "order.validated"}, eventNames(fast))

	r, err := events.Readiness(b.ctx, b.pool, comp.Step.TaskUUID, comp.Step.StepUUID)
	require.NoError(t, err)
	require.False(t, r[0].IsRetryable, "readiness agrees with the state machine")
}

func TestLastAllowedAttemptFiresPermanent(t *testing.T) {
	t.Parallel()
	t.Run("max_attempts 1 (test environment)", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil, template.WithEnvironment("test"))
		_, steps := b.newTask(t)
		comp := failPayment(t, b, steps, events.Failure{Message: "timeout"})
		require.Equal(t, "error", comp.Step.State)
		require.Equal(t, []string{"payment.failed.permanent"}, names(b.queueRows(t)))
		require.Contains(t, skippedNames(comp), "payment.failed.retryable")
	})
	t.Run("third of three attempts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		_, steps := b.newTask(t)
		comp := failPayment(t, b, steps, events.Failure{Message: "timeout"})
		require.Equal(t, "payment.failed.retryable", comp.Published[0].Name)
		for attempt := 2; attempt <= 3; attempt++ {
			// Let the backoff elapse.
			_, err := b.pool.Exec(b.ctx, `UPDATE stepevents.workflow_steps SET next_retry_at = now() - interval '1 second' WHERE step_uuid = $1`, steps[stepPayment])
			require.NoError(t, err)
			b.start(t, steps[stepPayment])
			comp, err = b.client.FailStep(b.ctx, steps[stepPayment], events.Failure{Message: "timeout"})
			require.NoError(t, err)
		}
		require.Equal(t, "error", comp.Step.State)
		require.Equal(t, 3, comp.Step.Attempts)
		require.Equal(t, []string{"payment.failed.permanent"}, []string{comp.Published[0].Name})
		require.Equal(t, []string{"payment.failed.permanent"}, names(b.queueRows(t)))
	})
}

func TestAlwaysFiresOnSuccessAndFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, fail := range []bool{false, true} {
		_, steps := b.newTask(t)
		b.complete(t, steps[stepValidate], validResult)
		b.complete(t, steps[stepPayment], `{"amount":1}`)
		b.start(t, steps[stepInventory])
		var comp *events.Completion
		var err error
		if fail {
			comp, err = b.client.FailStep(b.ctx, steps[stepInventory], events.Failure{Message: "warehouse down", Code: "DOWN"})
		} else {
			comp, err = b.client.CompleteStep(b.ctx, steps[stepInventory], json.RawMessage(`{"order_id":"o"}`))
		}
		require.NoError(t, err)
		require.Len(t, comp.Published, 1, "fail=%t", fail)
		require.Equal(t, "inventory.updated", comp.Published[0].Name)
	}
	rows := b.queueRows(t)
	require.Equal(t, []string{"payment.processed", "inventory.updated", "payment.processed", "inventory.updated"}, names(rows))
	require.False(t, rows[3].Event.Payload.ExecutionResult.Success)
	require.Equal(t, "warehouse down", rows[3].Event.Payload.ExecutionResult.Error.Message)
}

func TestMissingPublisherIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, err := events.NewClient(b.ctx, b.pool, &events.Config{Publishers: []events.Publisher{}})
	require.ErrorIs(t, err, events.ErrUnknownPublisher)
	require.ErrorContains(t, err, "NotificationEventPublisher, PaymentEventPublisher")

	// A client without them also refuses to apply such a template.
	pool2 := b.pool
	_, err = pool2.Exec(b.ctx, `TRUNCATE stepevents.task_templates CASCADE`)
	require.NoError(t, err)
	c, err := events.NewClient(b.ctx, pool2, &events.Config{Publishers: []events.Publisher{}})
	require.NoError(t, err)
	defer c.Close(b.ctx)
	tpl, err := template.LoadFile(fixturePath)
	require.NoError(t, err)
	err = c.ApplyTemplate(b.ctx, tpl)
	require.ErrorIs(t, err, events.ErrUnknownPublisher)
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM stepevents.task_templates`).Scan(&n))
	require.Zero(t, n, "nothing applied")
}

func TestRollbackLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, mode := range []events.FastMode{events.FastAfterCommit, events.FastInTransaction} {
		b := setup(t, &events.Config{FastMode: mode})
		l := b.listen(t)
		_, steps := b.newTask(t)
		b.complete(t, steps[stepValidate], validResult)
		b.start(t, steps[stepPayment])
		require.Len(t, l.collect(t, 1), 1)

		tx, err := b.pool.Begin(b.ctx)
		require.NoError(t, err)
		comp, err := b.client.CompleteStepTx(b.ctx, tx, steps[stepPayment], json.RawMessage(`{"amount":3}`))
		require.NoError(t, err)
		require.Len(t, comp.Published, 1)
		require.NoError(t, tx.Rollback(b.ctx))

		st, err := events.GetStep(b.ctx, b.pool, steps[stepPayment])
		require.NoError(t, err)
		require.Equal(t, "in_progress", st.State, "no step change")
		require.Empty(t, b.queueRows(t), "no pgmq message")
		b.sentinel(t)
		got := l.collect(t, 1)
		require.Equal(t, []string{"order.validated"}, eventNames(got), "no fast event before the sentinel")

		// Committed: exactly the declared durable events.
		tx, err = b.pool.Begin(b.ctx)
		require.NoError(t, err)
		comp, err = b.client.CompleteStepTx(b.ctx, tx, steps[stepPayment], json.RawMessage(`{"amount":3}`))
		require.NoError(t, err)
		require.NoError(t, tx.Commit(b.ctx))
		b.client.ReleaseFast(comp)
		b.client.ReleaseFast(comp) // idempotent
		require.Equal(t, []string{"payment.processed"}, names(b.queueRows(t)))
		got = l.collect(t, 1)
		require.Equal(t, comp.Published[0].EventID, got[0].EventID)
		require.Nil(t, l.next(t, 300*time.Millisecond), "released once")
	}
}

func TestShouldPublishTruthTable(t *testing.T) {
	t.Parallel()
	pool := setup(t, nil).pool
	type row struct {
		cond      string
		succeeded bool
		retryable *bool
		want      bool
	}
	tr, fa := true, false
	var rows []row
	for _, r := range []*bool{nil, &tr, &fa} {
		rows = append(rows,
			row{"success", true, r, true}, row{"success", false, r, false},
			row{"failure", true, r, false}, row{"failure", false, r, true},
			row{"always", true, r, true}, row{"always", false, r, true},
			row{"retryable_failure", true, r, false}, row{"permanent_failure", true, r, false},
			row{"retryable_failure", false, r, r != nil && *r}, row{"permanent_failure", false, r, r != nil && !*r},
		)
	}
	for _, r := range rows {
		var got bool
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT stepevents.should_publish($1, $2, $3)`,
			r.cond, r.succeeded, r.retryable).Scan(&got))
		require.Equal(t, r.want, got, "%s succeeded=%t retryable=%v", r.cond, r.succeeded, r.retryable)
	}
	var got bool
	err := pool.QueryRow(context.Background(), `SELECT stepevents.should_publish('sometimes', true, NULL)`).Scan(&got)
	require.ErrorContains(t, err, `unknown publication condition 'sometimes'`)
	require.ErrorContains(t, err, "SE004")
}

func TestInvalidPayloadIsNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, steps := b.newTask(t)
	comp := b.complete(t, steps[stepValidate], `{"order_id":"o"}`)
	require.Empty(t, comp.Published)
	require.Len(t, comp.Skipped, 1)
	require.Equal(t, events.SkipInvalidPayload, comp.Skipped[0].Reason)
	require.Contains(t, comp.Skipped[0].Detail, "validation_timestamp")
	require.Equal(t, uint64(1), b.client.Stats().Skipped[events.SkipInvalidPayload])
}

func TestOversizedFastEventTravelsByReference(t *testing.T) {
	t.Parallel()
	b := setup(t, &events.Config{FastMode: events.FastInTransaction})
	l := b.listen(t)
	_, steps := b.newTask(t)
	big := make([]byte, 9000)
	for i := range big {
		big[i] = 'x'
	}
	res, _ := json.Marshal(map[string]string{"order_id": "o", "validation_timestamp": "2026-11-28T10:00:00Z", "blob": string(big)})
	comp := b.complete(t, steps[stepValidate], string(res))
	require.True(t, comp.Published[0].ByReference)
	got := l.collect(t, 1)
	require.Equal(t, comp.Published[0].EventID, got[0].EventID)
	require.JSONEq(t, string(res), string(got[0].Payload.Payload), "the whole event arrives")
	require.Equal(t, uint64(1), b.client.Stats().FastOversized)
}

func TestFastDeliveryErrorsCounted(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, steps := b.newTask(t)
	b.start(t, steps[stepValidate])
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	comp, err := b.client.CompleteStepTx(b.ctx, tx, steps[stepValidate], json.RawMessage(validResult))
	require.NoError(t, err)
	require.NoError(t, tx.Commit(b.ctx))
	// The notifier is gone: the fast copy cannot be sent. The step result
	// stands; the failure is counted.
	require.NoError(t, b.client.Close(b.ctx))
	b.client.ReleaseFast(comp)
	require.Equal(t, uint64(1), b.client.Stats().FastDeliveryErrors)
	st, err := events.GetStep(b.ctx, b.pool, steps[stepValidate])
	require.NoError(t, err)
	require.Equal(t, "complete", st.State)
}

// By default a publisher error fails the completion: nothing commits, so a
// committed step never lacks its declared event.
func TestCustomPublisherErrorFailsCompletion(t *testing.T) {
	t.Parallel()
	b, payment := paymentWithFailingPublishers(t)
	_, err := b.client.CompleteStep(b.ctx, payment, json.RawMessage(`{}`))
	require.ErrorIs(t, err, events.ErrPublisher)
	require.ErrorContains(t, err, "publisher PaymentEventPublisher failed for payment.processed: boom")
	require.Equal(t, uint64(1), b.client.Stats().RoutingErrors)
	st, err := events.GetStep(b.ctx, b.pool, payment)
	require.NoError(t, err)
	require.Equal(t, "in_progress", st.State, "nothing committed")
	require.Empty(t, b.queueRows(t))
}

// With TolerantPublishers the step commits and the problem is reported.
func TestCustomPublisherErrorTolerated(t *testing.T) {
	t.Parallel()
	pubs := []events.Publisher{failingPublisher{"PaymentEventPublisher"}, failingPublisher{"NotificationEventPublisher"}}
	b := setup(t, &events.Config{Publishers: pubs, TolerantPublishers: true})
	_, steps := b.newTask(t)
	b.complete(t, steps[stepValidate], validResult)
	comp := b.complete(t, steps[stepPayment], `{}`)
	require.Len(t, comp.Errors, 1)
	require.ErrorIs(t, comp.Errors[0], events.ErrPublisher)
	require.ErrorContains(t, comp.Errors[0], "publisher PaymentEventPublisher failed for payment.processed: boom")
	require.Equal(t, uint64(1), b.client.Stats().RoutingErrors)
	require.Equal(t, "complete", comp.Step.State)
}

type failingPublisher struct{ name string }

func (p failingPublisher) Name() string { return p.name }
func (p failingPublisher) Publish(context.Context, *events.StepContext, events.Declaration) ([]events.Emit, error) {
	return nil, errBoom
}

var errBoom = errors.New("boom")

func skippedNames(c *events.Completion) []string {
	out := []string{}
	for _, s := range c.Skipped {
		out = append(out, s.Name)
	}
	return out
}

func keys(m map[string]json.RawMessage) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}
