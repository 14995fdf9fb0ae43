package events

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// decodeRecorded agrees with json.Unmarshal on record_step_result's
// document, as jsonb prints it.
func TestDecodeRecordedMatchesUnmarshal(t *testing.T) {
	for name, doc := range map[string]string{
		"success": `{"step": {"name": "pay", "state": "complete", "results": {"a": [1, "}"]}, "attempts": 1, ` +
			`"retryable": true, "step_uuid": "0192f0c4-1b2c-7d3e-8f40-123456789abc", "task_uuid": ` +
			`"0192f0c4-1b2c-7d3e-8f40-123456789abd", "last_error": null, "max_attempts": 3, ` +
			`"last_attempted_at": "2026-11-28T09:14:46.123456+00:00"}, "succeeded": true, "template_id": 42, ` +
			`"declarations": [{"fires": true, "condition": "success", "publisher": null, "event_name": "a.b", ` +
			`"delivery_mode": "fast"}], "is_retryable": null, "task_sequence_step": {"task": {"state": "x", ` +
			`"context": {"k": "v\"}"}, "namespace": "ns\u00e9", "correlation_id": ` +
			`"0192f0c4-1b2c-7d3e-8f40-123456789abe"}, "workflow_step": {"results": {}}, ` +
			`"dependency_results": {"a": {"x": 1}, "b": null}}}`,
		// Every column of to_jsonb(workflow_steps), as PostgreSQL prints it,
		// including ones Step does not have, and an escaped name.
		"every column": `{"step": {"name": "pay \"\u00e9\"", "state": "waiting_for_retry", "backoff": "linear", ` +
			`"handler": "h", "results": null, "attempts": 2, "claim_id": 7, "position": 0, "task_uuid": ` +
			`"0192f0c4-1b2c-7d3e-8f40-123456789abd", "retryable": false, "step_uuid": ` +
			`"0192f0c4-1b2c-7d3e-8f40-123456789abc", "created_at": "2026-11-28T09:14:46.123456+00:00", ` +
			`"last_error": {"message": "m"}, "updated_at": "2026-11-28T09:14:47+00:00", "max_attempts": 5, ` +
			`"next_retry_at": "2026-11-28T09:14:49.5+01:00", "retry_blocked": false, "max_backoff_ms": 30000, ` +
			`"backoff_base_ms": 1000, "last_failure_at": "2026-11-28T09:14:47.000001+00:00", ` +
			`"timeout_seconds": 30, "last_attempted_at": "2026-11-28T09:14:46.5+00:00", ` +
			`"backoff_request_seconds": 2.5}, "succeeded": false, "template_id": 3, "declarations": [], ` +
			`"is_retryable": true, "task_sequence_step": {"task": {}, "dependency_results": {}}}`,
		"declarations": `{"step": {}, "succeeded": true, "is_retryable": false, "template_id": 9, "declarations": [` +
			`{"fires": false, "condition": "permanent_failure", "publisher": "Pay\\ment\"s", "event_name": "a.b", ` +
			`"delivery_mode": "durable"}, null, {"event_name": "c.d", "fires": true, "publisher": null, ` +
			`"EVENT_NAME": "e.f"}], "task_sequence_step": {}}`,
		"failure": `{"step": {"state": "waiting_for_retry", "last_error": {"message": "m"}}, "succeeded": false, ` +
			`"template_id": 1, "declarations": [], "is_retryable": true, "task_sequence_step": {"task": ` +
			`{"context": null}, "dependency_results": {}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			var want recorded
			require.NoError(t, json.Unmarshal([]byte(doc), &want))
			var wantSeq sequenceFields
			require.NoError(t, json.Unmarshal(want.Sequence, &wantSeq))
			got, gotSeq, err := decodeRecorded([]byte(doc))
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.Equal(t, wantSeq, gotSeq)
		})
	}
}

// FuzzDecodeStepRow: wherever json.Unmarshal decodes a step row,
// decodeStepRow decodes the same value, for ASCII documents: to_jsonb
// prints column names in ASCII and its text in the database's encoding,
// UTF-8. (On other bytes the two differ on purpose: encoding/json folds
// keys like "bac\u212aoff" to backoff and replaces invalid UTF-8.)
func FuzzDecodeStepRow(f *testing.F) {
	f.Add(`{"name": "pay", "state": "complete", "results": {"a": [1, "}"]}, "attempts": 1, "retryable": true}`)
	f.Add(`{"step_uuid": "0192f0c4-1b2c-7d3e-8f40-123456789abc", "backoff_request_seconds": 2.5, ` +
		`"next_retry_at": "2026-11-28T09:14:49.5+01:00", "last_error": null, "max_attempts": 5}`)
	f.Add(`{"NAME": "x", "name": "y", "last_failure_at": null, "timeout_seconds": -0, "backoff": "\u00e9"}`)
	f.Fuzz(func(t *testing.T, doc string) {
		for _, c := range []byte(doc) {
			if c >= 0x80 {
				return
			}
		}
		var want stepRowJSON
		if json.Unmarshal([]byte(doc), &want) != nil {
			return
		}
		var got stepRowJSON
		require.NoError(t, decodeStepRow([]byte(doc), &got), doc)
		// Raw parts are compared as JSON: json.Unmarshal copies them as
		// they are, decodeStepRow slices them out of doc the same way.
		require.Equal(t, want, got, doc)
	})
}

// BenchmarkDecodeStepRow: the step row of every completion's
// record_step_result document, by decodeStepRow and by json.Unmarshal.
func BenchmarkDecodeStepRow(b *testing.B) {
	row := []byte(`{"name": "domain_events_process_payment", "state": "complete", "backoff": "exponential", ` +
		`"handler": "payments.capture", "results": {"amount": 42.5, "currency": "USD", "transaction_id": "txn_1"}, ` +
		`"attempts": 1, "claim_id": 7, "position": 1, "task_uuid": "0192f0c4-1b2c-7d3e-8f40-123456789abd", ` +
		`"retryable": true, "step_uuid": "0192f0c4-1b2c-7d3e-8f40-123456789abc", ` +
		`"created_at": "2026-11-28T09:14:46.123456+00:00", "last_error": null, ` +
		`"updated_at": "2026-11-28T09:14:47.654321+00:00", "max_attempts": 3, "next_retry_at": null, ` +
		`"retry_blocked": false, "max_backoff_ms": 30000, "backoff_base_ms": 1000, "last_failure_at": null, ` +
		`"timeout_seconds": 0, "last_attempted_at": "2026-11-28T09:14:46.5+00:00", "backoff_request_seconds": null}`)
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r stepRowJSON
			if err := json.Unmarshal(row, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeStepRow", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r stepRowJSON
			if err := decodeStepRow(row, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
