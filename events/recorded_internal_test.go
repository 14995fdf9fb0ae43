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
