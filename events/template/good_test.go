package template_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events/template"
)

const goodFixture = "../../test/templates/good/domain_event_publishing.yaml"

// eventSummary is the part of an EventDeclaration the fixture pins down.
type eventSummary struct {
	Name      string
	Condition template.Condition
	Mode      template.DeliveryMode
	Publisher string
}

func TestGoodFixture(t *testing.T) {
	tpl, err := template.LoadFile(goodFixture)
	require.NoError(t, err)

	assert.Equal(t, "domain_event_publishing", tpl.Name)
	assert.Equal(t, "domain_events", tpl.Namespace)
	assert.Equal(t, "1.0.0", tpl.Version)
	assert.Equal(t, "domain_events_domain_events", tpl.QueueName())
	assert.Equal(t, goodFixture, tpl.Source)
	assert.Equal(t, "", tpl.Environment)
	assert.Empty(t, tpl.Warnings)
	require.NotNil(t, tpl.CompiledInputSchema)

	wantSteps := []string{
		"domain_events_validate_order",
		"domain_events_process_payment",
		"domain_events_update_inventory",
		"domain_events_send_notification",
	}
	wantEvents := [][]eventSummary{
		{{"order.validated", template.ConditionSuccess, template.DeliveryFast, ""}},
		{
			{"payment.processed", template.ConditionSuccess, template.DeliveryBroadcast, "PaymentEventPublisher"},
			{"payment.failed.retryable", template.ConditionRetryableFailure, template.DeliveryFast, ""},
			{"payment.failed.permanent", template.ConditionPermanentFailure, template.DeliveryDurable, ""},
		},
		{{"inventory.updated", template.ConditionAlways, template.DeliveryDurable, ""}},
		{{"notification.sent", template.ConditionSuccess, template.DeliveryBroadcast, "NotificationEventPublisher"}},
	}
	wantRetry := template.Retry{Retryable: true, MaxAttempts: 3, Backoff: template.BackoffExponential, BackoffBaseMS: 1000, MaxBackoffMS: 10000}

	require.Len(t, tpl.Steps, len(wantSteps))
	for i, s := range tpl.Steps {
		assert.Equal(t, wantSteps[i], s.Name)
		assert.NotEmpty(t, s.Description)
		assert.NotEmpty(t, s.Handler)
		if i == 0 {
			assert.Empty(t, s.Dependencies)
		} else {
			assert.Equal(t, []string{wantSteps[i-1]}, s.Dependencies, "linear chain")
		}
		assert.Equal(t, wantRetry, s.Retry, s.Name)
		assert.Equal(t, 0, s.TimeoutSeconds)
		var got []eventSummary
		for _, e := range s.Events {
			got = append(got, eventSummary{e.Name, e.Condition, e.DeliveryMode, e.Publisher})
			assert.NotEmpty(t, e.Description, e.Name)
			assert.NotNil(t, e.Schema, e.Name)
			assert.NotNil(t, e.CompiledSchema, e.Name)
			assert.Empty(t, e.DurableRedact, e.Name)
		}
		assert.Equal(t, wantEvents[i], got, s.Name)
	}

	step, ok := tpl.Step("domain_events_process_payment")
	require.True(t, ok)
	ev, ok := step.Event("payment.failed.permanent")
	require.True(t, ok)
	assert.Equal(t, template.ConditionPermanentFailure, ev.Condition)
	_, ok = tpl.Step("nope")
	assert.False(t, ok)
	_, ok = step.Event("nope.nope")
	assert.False(t, ok)
}

// TestGoodFixtureSchemas checks the schemas accept what the engine will
// publish: handler results on success, the default publisher's
// {message, type, code, retryable, attempt, max_attempts} on failure.
func TestGoodFixtureSchemas(t *testing.T) {
	tpl, err := template.LoadFile(goodFixture)
	require.NoError(t, err)

	assert.Empty(t, tpl.CompiledInputSchema.Validate(map[string]any{
		"order_id": "0190c0a8-7f4e-7cc1-8d1f-3c0c2b1f6e5a", "customer_id": "c-1",
	}))
	assert.Equal(t, []template.Violation{
		{Pointer: "", Message: "missing property 'customer_id'"},
		{Pointer: "/order_id", Message: "'not-a-uuid' is not valid uuid: must have 5 elements"},
	}, tpl.CompiledInputSchema.Validate(map[string]any{"order_id": "not-a-uuid"}))

	failure := map[string]any{
		"message": "card declined", "type": "PaymentError", "code": "card_declined",
		"retryable": false, "attempt": 1, "max_attempts": 1,
	}
	payment, _ := tpl.Step("domain_events_process_payment")
	for _, name := range []string{"payment.failed.retryable", "payment.failed.permanent"} {
		ev, _ := payment.Event(name)
		assert.Empty(t, ev.ValidatePayload(failure), name)
		assert.NotEmpty(t, ev.ValidatePayload(map[string]any{}), name)
	}
	inventory, _ := tpl.Step("domain_events_update_inventory")
	always, _ := inventory.Event("inventory.updated")
	assert.Empty(t, always.ValidatePayload(failure), "always: failure payload")
	assert.Empty(t, always.ValidatePayload(map[string]any{"order_id": "o-1", "items_reserved": 2}), "always: success payload")
	processed, _ := payment.Event("payment.processed")
	assert.Empty(t, processed.ValidatePayload(json.RawMessage(`{"order_id":"o-1","transaction_id":"t-1","amount":12.5,"currency":"EUR"}`)))
}

func TestGoodFixtureTestEnvironment(t *testing.T) {
	tpl, err := template.LoadFile(goodFixture, template.WithEnvironment("test"))
	require.NoError(t, err)
	assert.Equal(t, "test", tpl.Environment)
	for _, s := range tpl.Steps {
		// Merge semantics: only max_attempts changes; backoff settings stay.
		assert.Equal(t, template.Retry{Retryable: true, MaxAttempts: 1, Backoff: template.BackoffExponential, BackoffBaseMS: 1000, MaxBackoffMS: 10000}, s.Retry, s.Name)
	}
}

// TestDefinitionRoundTrip checks Definition is a loadable template that
// loads to the same thing, so storage can reload what it stored.
func TestDefinitionRoundTrip(t *testing.T) {
	for _, env := range []string{"", "test"} {
		tpl, err := template.LoadFile(goodFixture, template.WithEnvironment(env))
		require.NoError(t, err)
		require.True(t, json.Valid(tpl.Definition))
		again, err := template.Load("stored.json", tpl.Definition)
		require.NoError(t, err)
		assert.Equal(t, string(tpl.Definition), string(again.Definition))
		require.Len(t, again.Steps, len(tpl.Steps))
		for i := range tpl.Steps {
			a, b := tpl.Steps[i], again.Steps[i]
			assert.Equal(t, a.Retry, b.Retry)
			assert.Equal(t, a.Dependencies, b.Dependencies)
			require.Len(t, b.Events, len(a.Events))
			for j := range a.Events {
				assert.JSONEq(t, string(a.Events[j].Schema), string(b.Events[j].Schema))
				assert.Equal(t, a.Events[j].Publisher, b.Events[j].Publisher)
			}
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile(goodFixture)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := template.Load(goodFixture, data, template.WithEnvironment("test")); err != nil {
			b.Fatal(err)
		}
	}
}
