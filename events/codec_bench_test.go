package events_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// benchEvent is an event shaped like what a completion of the seed fixture's
// payment step publishes: a business payload, the execution result and the
// task_sequence_step context, about 1.5 KB of JSON.
func benchEvent() events.Event {
	task, step := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	result := json.RawMessage(`{"order_id":"0192f0c4-1b2c-7d3e-8f40-123456789abc","transaction_id":"txn_0192f0c4",` +
		`"amount":42.5,"currency":"USD","payment_method":"card"}`)
	seq := json.RawMessage(fmt.Sprintf(`{"task":{"task_uuid":%q,"namespace":"domain_events",`+
		`"task_name":"domain_event_publishing","task_version":"1.0.0","context":{"order_id":`+
		`"0192f0c4-1b2c-7d3e-8f40-123456789abc","customer_id":"c-1","amount":42.5},"correlation_id":%q,`+
		`"state":"in_progress","created_at":"2026-11-28T10:00:00Z"},"workflow_step":{"workflow_step_uuid":%q,`+
		`"task_uuid":%q,"name":"domain_events_process_payment","handler":"domain_events.process_payment",`+
		`"state":"complete","retryable":true,"max_attempts":3,"attempts":1,"results":%s,"last_error":null},`+
		`"dependency_results":{"domain_events_validate_order":{"order_id":"0192f0c4-1b2c-7d3e-8f40-123456789abc",`+
		`"validation_timestamp":"2026-11-28T10:00:00Z"}}}`, task, task, step, task, result))
	return events.Event{
		EventID: uuid.Must(uuid.NewV7()), EventName: "payment.processed", EventVersion: events.EventVersion,
		Payload: events.EventPayload{
			ExecutionResult: events.ExecutionResult{StepUUID: step, Success: true, Status: "completed", Result: result},
			Payload: json.RawMessage(`{"order_id":"0192f0c4-1b2c-7d3e-8f40-123456789abc","transaction_id":` +
				`"txn_0192f0c4","amount":42.5,"currency":"USD","customer_tier":"standard","attempt":1}`),
			TaskSequenceStep: seq,
		},
		Metadata: events.EventMetadata{TaskUUID: task, StepUUID: step, StepName: "domain_events_process_payment",
			Namespace: "domain_events", CorrelationID: task, FiredAt: time.Now().UTC(), FiredBy: "PaymentEventPublisher"},
	}
}

// wirePayload builds a NOTIFY payload carrying n copies of ev the way the
// notifier does ({"v":1,"sig":…,"env":{"events":[…]}}), signed when key is set.
func wirePayload(tb testing.TB, ev events.Event, n int, key []byte) []byte {
	tb.Helper()
	raw, err := json.Marshal(ev)
	require.NoError(tb, err)
	env := events.Envelope{}
	for range n {
		env.Events = append(env.Events, raw)
	}
	envJSON, err := json.Marshal(env)
	require.NoError(tb, err)
	w := map[string]any{"v": 1, "env": json.RawMessage(envJSON)}
	if len(key) > 0 {
		m := hmac.New(sha256.New, key)
		m.Write(envJSON)
		w["sig"] = hex.EncodeToString(m.Sum(nil))
	}
	payload, err := json.Marshal(w)
	require.NoError(tb, err)
	require.Less(tb, len(payload), events.MaxNotifyPayload, "the bench payload must fit one NOTIFY")
	return payload
}

// BenchmarkEventEncode is json.Marshal of an event: the body of the pgmq
// message and of the fast envelope, which every published event paid once
// (twice for a redacted durable copy) before buildEvent encoded by
// appending (BenchmarkAppendEvent).
func BenchmarkEventEncode(b *testing.B) {
	ev := benchEvent()
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, err := json.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}

// BenchmarkAppendEvent is BenchmarkEventEncode with the append-based
// encoder buildEvent uses (same bytes as json.Marshal).
func BenchmarkAppendEvent(b *testing.B) {
	ev := benchEvent()
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, err := events.AppendEvent(nil, &ev)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}

// jsonbText spaces compact JSON the way PostgreSQL prints jsonb (after ':'
// and ','), the form the step context and results arrive in.
func jsonbText(compact []byte) json.RawMessage {
	var out []byte
	inString, escaped := false, false
	for _, c := range compact {
		out = append(out, c)
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ':' || c == ','):
			out = append(out, ' ')
		}
	}
	return out
}

// BenchmarkCompletionEncode is the event encoding of one completion of a
// step declaring three events (the default publisher: each event's payload
// is the step result), raw parts spaced as jsonb prints them: each event and
// its pgmq headers with json.Marshal, as buildEvent did, and with the
// encoder, which compacts the shared raw parts once per completion.
func BenchmarkCompletionEncode(b *testing.B) {
	ev := benchEvent()
	ev.Payload.TaskSequenceStep = jsonbText(ev.Payload.TaskSequenceStep)
	ev.Payload.ExecutionResult.Result = jsonbText(ev.Payload.ExecutionResult.Result)
	ev.Payload.Payload = ev.Payload.ExecutionResult.Result
	evs := make([]events.Event, 3)
	for i := range evs {
		evs[i] = ev
		evs[i].EventID = uuid.Must(uuid.NewV7())
		evs[i].EventName = fmt.Sprintf("payment.event_%d", i)
	}
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i := range evs {
				if _, err := json.Marshal(evs[i]); err != nil {
					b.Fatal(err)
				}
				hdr := map[string]string{"event_name": evs[i].EventName, "event_id": evs[i].EventID.String()}
				if _, err := json.Marshal(hdr); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.EncodeCompletion(evs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEventDecode is what a listener (and a durable consumer) pays per
// event to turn its JSON back into an events.Event.
func BenchmarkEventDecode(b *testing.B) {
	raw, err := json.Marshal(benchEvent())
	require.NoError(b, err)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var ev events.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeStoredEvent is the consumer's decode of a pgmq message
// body (jsonb text), against json.Unmarshal in BenchmarkEventDecode.
func BenchmarkDecodeStoredEvent(b *testing.B) {
	raw, err := json.Marshal(benchEvent())
	require.NoError(b, err)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.DecodeStoredEvent(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEnvelope is the listener's read-loop cost per NOTIFY:
// shape check, optional HMAC verification, and splitting out the events
// (which stay raw JSON until the dispatcher decodes them).
func BenchmarkDecodeEnvelope(b *testing.B) {
	key := []byte("bench-signing-key-0123456789abcdef")
	for _, c := range []struct {
		name   string
		events int
		key    []byte
	}{
		{"events=1/unsigned", 1, nil},
		{"events=1/signed", 1, key},
		{"events=3/unsigned", 3, nil},
		{"events=3/signed", 3, key},
	} {
		b.Run(c.name, func(b *testing.B) {
			payload := wirePayload(b, benchEvent(), c.events, c.key)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				env, err := events.DecodeEnvelope(payload, c.key)
				if err != nil || len(env.Events) != c.events {
					b.Fatalf("decode: %v (%d events)", err, len(env.Events))
				}
			}
		})
	}
}
