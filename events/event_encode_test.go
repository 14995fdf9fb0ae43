package events

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// awkward are strings encoding/json escapes in every way it knows: quotes,
// backslashes, control characters, HTML characters, U+2028/U+2029, invalid
// and truncated UTF-8, surrogate halves encoded as UTF-8, DEL, emoji.
var awkward = []string{
	"", "plain", `quote " backslash \ slash /`, "\x00\x01\x07\b\t\n\v\f\r\x1b\x1f\x7f",
	"<script>alert('x') && 1 > 0</script>", "line\u2028sep\u2029para", "\xff\xfe invalid", "trunc \xe2\x80",
	"\xe2\x80\xa8 at start", "ends \xe2", "\xed\xa0\x80 surrogate", "héllo wörld ✓ 😀", "\xc0\xaf overlong",
}

// rawCases are raw JSON parts: jsonb-style spacing, nesting, escapes, HTML
// and separator characters inside strings (and invalid UTF-8, which
// json.Marshal copies as is), and values json.Marshal refuses.
var rawCases = []string{
	`{"a": 1, "b": [1, 2, {"c": null}], "d": {"e": "f g", "h": true, "i": false}}`,
	" \t\r\n{ \"k\" : [ ] , \"o\" : { } } \n",
	`{"html": "<b>&amp;</b>", "esc": "\u003c\"\\\/\b\f\n\r\t\u2028", "sep": "` + "\u2028\u2029" + `"}`,
	"\"\xff\xfe bad utf-8 \xe2\x80\"", `"\ud800 lone surrogate escape"`,
	`-0.5e+10`, `0`, `-0`, `1E-7`, `123456789012345678901234567890`, `true`, `false`, `null`, `"s"`, `[]`, `{}`,
	`[[[[[[[[[[]]]]]]]]]]`, `{"a":{"b":{"c":[1,{"d":"e"}]}}}`,
	// invalid
	``, ` `, `{`, `}`, `[1,]`, `{"a":}`, `{"a" 1}`, `{"a":1,}`, `{,}`, `01`, `1.`, `.5`, `-`, `1e`, `1e+`, `+1`,
	`tru`, `nul`, `nulll`, `{} x`, `1 2`, "\"\x01\"", `"\q"`, `"\u12G4"`, `"\u12"`, `"unterminated`, `'single'`,
	`{"a":1}}`, `[1]]`, `{1:2}`, "\xef\xbb\xbf{}", `NaN`, `Infinity`, `[1 2]`,
}

func awkwardEvent() Event {
	ev := Event{
		EventID: uuid.MustParse("0192f0c4-1b2c-7d3e-8f40-123456789abc"), EventName: "payment.processed",
		EventVersion: EventVersion,
		Payload: EventPayload{
			ExecutionResult: ExecutionResult{StepUUID: uuid.New(), Success: true, Status: "completed",
				Result: json.RawMessage(`{"amount": 42.5, "note": "a < b"}`)},
			Payload:          json.RawMessage(`{"amount": 42.5, "note": "a < b"}`),
			TaskSequenceStep: json.RawMessage(`{"task": {"context": {"x": [1, 2, 3]}}, "dependency_results": {}}`),
		},
		Metadata: EventMetadata{TaskUUID: uuid.New(), StepUUID: uuid.New(), StepName: "step", Namespace: "ns",
			CorrelationID: uuid.New(), FiredAt: time.Now().UTC(), FiredBy: DefaultPublisherName},
	}
	return ev
}

// requireSameAsMarshal checks appendEvent, with and without a memo, and
// appendHeaders against encoding/json.
func requireSameAsMarshal(t *testing.T, ev Event) {
	t.Helper()
	want, wantErr := json.Marshal(ev)
	prefix := []byte("prefix")
	got, err := appendEvent(prefix, &ev)
	if wantErr != nil {
		require.Error(t, err, "json.Marshal failed with %v", wantErr)
		require.Equal(t, "prefix", string(got), "a failed append leaves dst as it was")
	} else {
		require.NoError(t, err)
		require.Equal(t, string(want), string(got[len(prefix):]))
	}
	var enc eventEncoder
	for range 2 { // the second time from the memo
		got, err := enc.appendEvent(nil, &ev)
		if wantErr != nil {
			require.Error(t, err)
		} else {
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		}
	}

	wantHdr, err := json.Marshal(map[string]string{"event_name": ev.EventName, "event_id": ev.EventID.String()})
	require.NoError(t, err)
	require.Equal(t, string(wantHdr), string(appendHeaders(nil, ev.EventID, ev.EventName)))
}

func TestAppendEventMatchesMarshal(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+30*60)
	cases := map[string]func(*Event){
		"as built":           func(*Event) {},
		"zero event":         func(ev *Event) { *ev = Event{} },
		"nil raw parts":      func(ev *Event) { ev.Payload = EventPayload{} },
		"empty result":       func(ev *Event) { ev.Payload.ExecutionResult.Result = json.RawMessage{} },
		"empty payload":      func(ev *Event) { ev.Payload.Payload = json.RawMessage{} },
		"empty sequence":     func(ev *Event) { ev.Payload.TaskSequenceStep = json.RawMessage{} },
		"null payload":       func(ev *Event) { ev.Payload.Payload = json.RawMessage(`null`) },
		"zero time":          func(ev *Event) { ev.Metadata.FiredAt = time.Time{} },
		"local time":         func(ev *Event) { ev.Metadata.FiredAt = time.Now() },
		"offset time":        func(ev *Event) { ev.Metadata.FiredAt = time.Date(2026, 11, 28, 10, 0, 0, 1, ist) },
		"negative offset":    func(ev *Event) { ev.Metadata.FiredAt = time.Date(1, 1, 1, 0, 0, 0, 0, time.FixedZone("", -7*3600)) },
		"offset seconds":     func(ev *Event) { ev.Metadata.FiredAt = time.Date(2026, 1, 2, 3, 4, 5, 6e8, time.FixedZone("", 3661)) },
		"year 10000":         func(ev *Event) { ev.Metadata.FiredAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"negative year":      func(ev *Event) { ev.Metadata.FiredAt = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) },
		"offset of 24 hours": func(ev *Event) { ev.Metadata.FiredAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)) },
		"failure": func(ev *Event) {
			ev.Payload.ExecutionResult = ExecutionResult{StepUUID: ev.Metadata.StepUUID, Status: "failed",
				Error: &StepError{Message: "boom <&>", Type: "Timeout\u2028", Code: "\xff", Retryable: true, Attempt: -3,
					MaxAttempts: 1 << 40}}
		},
		"zero error": func(ev *Event) { ev.Payload.ExecutionResult.Error = &StepError{} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			ev := awkwardEvent()
			mutate(&ev)
			requireSameAsMarshal(t, ev)
		})
	}
	for _, s := range awkward {
		t.Run("string "+s, func(t *testing.T) {
			ev := awkwardEvent()
			ev.EventName, ev.EventVersion, ev.Payload.ExecutionResult.Status = s, s, s
			ev.Metadata.StepName, ev.Metadata.Namespace, ev.Metadata.FiredBy = s, s, s
			requireSameAsMarshal(t, ev)
		})
	}
	for _, raw := range rawCases {
		t.Run("raw "+raw, func(t *testing.T) {
			for _, set := range []func(*Event){
				func(ev *Event) { ev.Payload.Payload = json.RawMessage(raw) },
				func(ev *Event) { ev.Payload.TaskSequenceStep = json.RawMessage(raw) },
				func(ev *Event) { ev.Payload.ExecutionResult.Result = json.RawMessage(raw) },
			} {
				ev := awkwardEvent()
				set(&ev)
				requireSameAsMarshal(t, ev)
			}
		})
	}
}

func TestAppendCompactErrors(t *testing.T) {
	for _, raw := range rawCases {
		_, wantErr := json.Marshal(json.RawMessage(raw))
		got, err := appendCompact([]byte("dst"), []byte(raw))
		if wantErr == nil {
			assert.NoError(t, err, "%q", raw)
			continue
		}
		assert.ErrorIs(t, err, errInvalidJSON, "%q", raw)
		assert.Equal(t, "dst", string(got), "%q", raw)
	}
}

// TestAppendCompactDepth checks the nesting limit is encoding/json's.
func TestAppendCompactDepth(t *testing.T) {
	for _, depth := range []int{maxNestingDepth, maxNestingDepth + 1} {
		for _, open := range []string{"[", `{"k":`} {
			close := map[string]string{"[": "]", `{"k":`: "}"}[open]
			raw := strings.Repeat(open, depth) + "1" + strings.Repeat(close, depth)
			want, wantErr := json.Marshal(json.RawMessage(raw))
			got, err := appendCompact(nil, []byte(raw))
			if depth > maxNestingDepth {
				require.Error(t, wantErr)
				require.ErrorIs(t, err, errInvalidJSON)
			} else {
				require.NoError(t, wantErr)
				require.NoError(t, err)
				require.Equal(t, string(want), string(got))
			}
		}
	}
}

// TestEventEncoderMemo checks a memo hit gives what compaction gives, that
// the memo keys on its own copy (bytes changed in place are compacted
// anew), and that a full memo still compacts.
func TestEventEncoderMemo(t *testing.T) {
	var enc eventEncoder
	raw := []byte(`{"a": "<x>"}`)
	out, err := enc.compact(raw)
	require.NoError(t, err)
	require.Equal(t, `{"a":"\u003cx\u003e"}`, string(out))
	again, err := enc.compact([]byte(`{"a": "<x>"}`))
	require.NoError(t, err)
	require.Equal(t, string(out), string(again))
	require.Len(t, enc.memo, 1)

	raw[8] = 'y' // a publisher reusing its buffer
	changed, err := enc.compact(raw)
	require.NoError(t, err)
	require.Equal(t, `{"a":"\u003cy\u003e"}`, string(changed))
	require.Equal(t, `{"a":"\u003cx\u003e"}`, string(out), "what was returned before stays as it was")
	require.Len(t, enc.memo, 2)

	_, err = enc.compact([]byte(`{"a": `))
	require.ErrorIs(t, err, errInvalidJSON)
	require.Len(t, enc.memo, 2, "invalid JSON is not remembered")

	for i := range 2 * maxMemo {
		raw := []byte(strings.Repeat(" ", i) + `[1, 2]`)
		out, err := enc.compact(raw)
		require.NoError(t, err)
		require.Equal(t, "[1,2]", string(out))
	}
	require.Len(t, enc.memo, maxMemo)
}

// FuzzAppendEvent checks appendEvent (with and without a memo) and
// appendHeaders against json.Marshal, byte for byte, and that appendEvent
// fails exactly when json.Marshal does.
func FuzzAppendEvent(f *testing.F) {
	for _, s := range awkward {
		f.Add(s, s, []byte(`{"k": "v"}`), []byte(`[1, 2]`), []byte(nil), false, int64(0), int64(0), 0)
	}
	for i, raw := range rawCases {
		f.Add("payment.processed", "completed", []byte(raw), []byte(raw), []byte(raw), i%2 == 0,
			int64(i)*1e10, int64(i)*123456789, (i-20)*1800)
	}
	f.Add("n", "s", []byte{}, []byte(nil), []byte{}, true, int64(-62135596800), int64(-1), 59)
	f.Add("n", "s", []byte(`null`), []byte(`{}`), []byte(`{}`), false, int64(253402300800), int64(0), -24*3600)
	f.Fuzz(func(t *testing.T, name, str string, payload, seq, result []byte, failed bool, sec, nsec int64,
		offset int) {
		ev := awkwardEvent()
		ev.EventName, ev.Metadata.FiredBy = name, name
		ev.Payload.ExecutionResult.Status, ev.Metadata.StepName, ev.Metadata.Namespace = str, str, str
		ev.Payload.Payload, ev.Payload.TaskSequenceStep = payload, seq
		ev.Payload.ExecutionResult.Result = result
		if failed {
			ev.Payload.ExecutionResult.Error = &StepError{Message: str, Type: name, Code: string(payload),
				Attempt: offset, MaxAttempts: int(nsec)}
		}
		ev.Metadata.FiredAt = time.Unix(sec, nsec).In(time.FixedZone(name, offset))
		requireSameAsMarshal(t, ev)
	})
}

func TestFieldErrorWraps(t *testing.T) {
	ev := awkwardEvent()
	ev.Payload.TaskSequenceStep = json.RawMessage(`{"a":`)
	_, err := appendEvent(nil, &ev)
	require.ErrorIs(t, err, errInvalidJSON)
	require.Contains(t, err.Error(), "payload.task_sequence_step")
}

// TestAppendEventKnowsEveryField fails when Event gains, loses or renames a
// JSON field (or a type starts encoding itself): appendEvent writes each
// field by hand and must be updated with it.
func TestAppendEventKnowsEveryField(t *testing.T) {
	var fields []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for f := range typ.Fields() {
			name := prefix + f.Tag.Get("json")
			fields = append(fields, name)
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			_, marshaler := reflect.New(ft).Interface().(json.Marshaler)
			_, texter := reflect.New(ft).Interface().(encoding.TextMarshaler)
			if ft.Kind() == reflect.Struct && !marshaler && !texter {
				walk(name+".", ft)
			}
		}
	}
	walk("", reflect.TypeFor[Event]())
	require.Equal(t, []string{
		"event_id", "event_name", "event_version", "payload",
		"payload.execution_result", "payload.execution_result.step_uuid", "payload.execution_result.success",
		"payload.execution_result.status", "payload.execution_result.result,omitempty",
		"payload.execution_result.error,omitempty",
		"payload.execution_result.error,omitempty.message", "payload.execution_result.error,omitempty.type",
		"payload.execution_result.error,omitempty.code", "payload.execution_result.error,omitempty.retryable",
		"payload.execution_result.error,omitempty.attempt", "payload.execution_result.error,omitempty.max_attempts",
		"payload.payload", "payload.task_sequence_step",
		"metadata", "metadata.task_uuid", "metadata.step_uuid", "metadata.step_name", "metadata.namespace",
		"metadata.correlation_id", "metadata.fired_at", "metadata.fired_by",
	}, fields)
}
