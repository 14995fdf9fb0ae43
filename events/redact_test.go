package events_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

const redactTemplate = `
name: redact
namespace_name: redact_ns
version: 1.0.0
steps:
  - name: charge
    handler: {callable: charge}
    publishes_events:
      - name: payment.captured
        description: internal copy keeps the card data, the public one does not
        delivery_mode: broadcast
        durable_redact: [/card/number, /internal_note]
      - name: payment.audited
        description: a sibling without redaction must not leak the card through the result copies
        delivery_mode: durable
        schema: {type: object}
  - name: receipt
    handler: {callable: receipt}
    dependencies: [charge]
    publishes_events:
      - name: receipt.sent
        description: carries the charge result in dependency_results
        delivery_mode: durable
`

// The durable copy of a broadcast loses the redacted fields; the fast copy,
// with the same event id, keeps them.
func TestDurableRedaction(t *testing.T) {
	t.Parallel()
	b := setup(t, &events.Config{FastMode: events.FastInTransaction})
	steps := b.taskOf(t, "redact.yaml", redactTemplate, "redact_ns", "redact")
	l := b.listen(t)
	result := `{"amount":5,"card":{"number":"4242424242424242","brand":"visa"},"internal_note":"vip"}`
	b.complete(t, steps[0].StepUUID, result)

	var msg, audit []byte
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT message FROM pgmq.q_redact_ns_domain_events
		WHERE message->>'event_name' = 'payment.captured'`).Scan(&msg))
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT message FROM pgmq.q_redact_ns_domain_events
		WHERE message->>'event_name' = 'payment.audited'`).Scan(&audit))
	var auditEv events.Event
	require.NoError(t, json.Unmarshal(audit, &auditEv))
	require.NotContains(t, string(auditEv.Payload.ExecutionResult.Result), "4242424242424242")
	require.NotContains(t, string(auditEv.Payload.TaskSequenceStep), "4242424242424242")
	require.Contains(t, string(auditEv.Payload.Payload), "4242424242424242",
		"its own business payload is what it declared: no durable_redact")
	var durable events.Event
	require.NoError(t, json.Unmarshal(msg, &durable))
	require.JSONEq(t, `{"amount":5,"card":{"brand":"visa"}}`, string(durable.Payload.Payload))
	require.NotContains(t, string(msg), "4242424242424242", "not even in the execution result")

	fast := l.collect(t, 1)
	require.Equal(t, durable.EventID, fast[0].EventID)
	require.JSONEq(t, result, string(fast[0].Payload.Payload))

	// A later step's durable event carries the charge result among its
	// dependency_results: redacted there too.
	b.complete(t, steps[1].StepUUID, `{"sent":true}`)
	var receipt []byte
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT message FROM pgmq.q_redact_ns_domain_events
		WHERE message->>'event_name' = 'receipt.sent'`).Scan(&receipt))
	require.NotContains(t, string(receipt), "4242424242424242")
	require.NotContains(t, string(receipt), "vip")
	require.Contains(t, string(receipt), `"brand": "visa"`, "the rest of the parent's result stays")
}

// Redaction re-encodes the durable copy; numbers must come out as they went
// in (decoding them as float64 rounded large integers and long decimals).
func TestDurableRedactionKeepsNumbersExact(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	steps := b.taskOf(t, "redact.yaml", redactTemplate, "redact_ns", "redact")
	const big, precise = "12345678901234567891", "0.1000000000000000055511151231257827"
	b.complete(t, steps[0].StepUUID, `{"amount":`+big+`,"rate":`+precise+`,"card":{"number":"4242424242424242"}}`)

	for _, event := range []string{"payment.captured", "payment.audited"} {
		var payload, result, stepResults [2]string
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT
				message->'payload'->'payload'->>'amount', message->'payload'->'payload'->>'rate',
				message->'payload'->'execution_result'->'result'->>'amount',
				message->'payload'->'execution_result'->'result'->>'rate',
				message->'payload'->'task_sequence_step'->'workflow_step'->'results'->>'amount',
				message->'payload'->'task_sequence_step'->'workflow_step'->'results'->>'rate'
			FROM pgmq.q_redact_ns_domain_events WHERE message->>'event_name' = $1`, event).
			Scan(&payload[0], &payload[1], &result[0], &result[1], &stepResults[0], &stepResults[1]))
		for _, got := range [][2]string{payload, result, stepResults} {
			require.Equal(t, [2]string{big, precise}, got, event)
		}
	}
}
