package events_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// DecodeStoredEvent agrees with json.Unmarshal on events as stepevents and
// PostgreSQL write them, and on the edge cases json.Unmarshal allows.
func TestDecodeStoredEventMatchesUnmarshal(t *testing.T) {
	ev := benchEvent()
	full, err := json.Marshal(ev)
	require.NoError(t, err)
	failed := ev
	failed.Payload.ExecutionResult = events.ExecutionResult{StepUUID: ev.Metadata.StepUUID, Status: "failed",
		Error: &events.StepError{Message: "card \"declined\"\n", Type: "PaymentError", Code: "E42", Retryable: true,
			Attempt: 2, MaxAttempts: 3}}
	failedJSON, err := json.Marshal(failed)
	require.NoError(t, err)
	cases := map[string]string{
		"as marshalled": string(full),
		"failure":       string(failedJSON),
		// jsonb's text output: keys by length, a space after ':' and ','.
		"jsonb text": `{"payload": {"payload": {"a": [1, 2, {"b": "}]\"["}]}, "execution_result": {"result": null, ` +
			`"status": "completed", "success": true, "step_uuid": "0192f0c4-1b2c-7d3e-8f40-123456789abc"}, ` +
			`"task_sequence_step": {"x": "y"}}, "metadata": {"fired_at": "2026-11-28T10:00:00.123456Z", ` +
			`"fired_by": "DefaultDomainEventPublisher", "step_name": "s", "task_uuid": ` +
			`"0192f0c4-1b2c-7d3e-8f40-123456789abd"}, "event_id": "0192f0c4-1b2c-7d3e-8f40-123456789abe", ` +
			`"event_name": "order.validated", "event_version": "1.0"}`,
		"escaped name and unknown keys": `{"event_name":"a\u002eb","extra":[{"}":"{"}],"n":-1.5e3,"t":true,` +
			"\n\t\"EVENT_VERSION\" : \"1.0\"\r\n}",
		"null parts":     `{"payload":{"execution_result":null,"payload":null},"metadata":null,"event_id":null}`,
		"error null":     `{"payload":{"execution_result":{"error":null,"result":"x"}}}`,
		"empty object":   `{}`,
		"last duplicate": `{"event_name":"a","event_name":"b"}`,
		"null":           `null`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			var want events.Event
			require.NoError(t, json.Unmarshal([]byte(in), &want))
			got, err := events.DecodeStoredEvent([]byte(in))
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

// Malformed input is an error that says where, never a panic.
func TestDecodeStoredEventMalformed(t *testing.T) {
	for _, in := range []string{``, `[]`, `{`, `{"a"`, `{"a":`, `{"a":1`, `{"a":1,}`, `{"a" 1}`, `{"a":"x}`,
		`{"a":{"b":[1,2}`, `{"a":1} x`, `{a:1}`, `{"event_id":"not-a-uuid"}`, `{"event_name":5}`,
		`{"metadata":{"task_uuid":1}}`, `{"payload":[1]}`, `{"payload":{"execution_result":{"error":"x"}}}`} {
		_, err := events.DecodeStoredEvent([]byte(in))
		require.Error(t, err, "input %q", in)
	}
}

// FuzzDecodeStoredEvent: no input makes the decoder panic, and on valid JSON
// it fails exactly when json.Unmarshal does (ASCII keys, where both fold
// case alike).
func FuzzDecodeStoredEvent(f *testing.F) {
	raw, err := json.Marshal(benchEvent())
	require.NoError(f, err)
	f.Add(raw)
	f.Add([]byte(`{"payload":{"execution_result":{"error":{"message":"m"}}},"event_name":"a\"b"}`))
	f.Add([]byte(`{"a":[{"}":"]"}],"event_id":null}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := events.DecodeStoredEvent(in)
		if !json.Valid(in) || !ascii(in) {
			return
		}
		var want events.Event
		werr := json.Unmarshal(in, &want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("DecodeStoredEvent err=%v, json.Unmarshal err=%v for %q", err, werr, in)
		}
		if err == nil {
			require.Equal(t, want, got)
		}
	})
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
