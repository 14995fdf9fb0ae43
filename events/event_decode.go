package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// DecodeStoredEvent decodes an event whose JSON is known to be valid: a
// jsonb value such as a pgmq message body, or an event of an envelope
// DecodeEnvelope returned. json.Unmarshal
// validates the whole document, then walks it again, and once more over each
// raw part; this decoder walks the document once, hands only the small parts
// (metadata, error) to encoding/json and copies the large raw parts
// (payload, task_sequence_step, result) as they are, at about a quarter of
// the CPU (BenchmarkEventDecode). Keys match as json.Unmarshal matches them
// (case-insensitively, the last duplicate wins). Malformed input gives an
// error, never a panic, but a raw part that is not valid JSON is kept as is:
// use json.Unmarshal for text that did not come out of a jsonb value.
func DecodeStoredEvent(b []byte) (Event, error) {
	var ev Event
	err := objectFields(b, func(key, val []byte) error {
		switch {
		case keyIs(key, "event_id"):
			return decodeUUID(val, &ev.EventID)
		case keyIs(key, "event_name"):
			return decodeString(val, &ev.EventName)
		case keyIs(key, "event_version"):
			return decodeString(val, &ev.EventVersion)
		case keyIs(key, "metadata"):
			return decodeMetadata(val, &ev.Metadata)
		case keyIs(key, "payload"):
			return decodePayload(val, &ev.Payload)
		}
		return nil
	})
	if err != nil {
		return Event{}, fmt.Errorf("error decoding event: %w", err)
	}
	return ev, nil
}

func decodePayload(b []byte, p *EventPayload) error {
	if isNull(b) {
		return nil
	}
	return objectFields(b, func(key, val []byte) error {
		switch {
		case keyIs(key, "payload"):
			p.Payload = bytes.Clone(val)
		case keyIs(key, "task_sequence_step"):
			p.TaskSequenceStep = bytes.Clone(val)
		case keyIs(key, "execution_result"):
			return decodeExecutionResult(val, &p.ExecutionResult)
		}
		return nil
	})
}

func decodeMetadata(b []byte, m *EventMetadata) error {
	return objectFields(b, func(key, val []byte) error {
		switch {
		case keyIs(key, "task_uuid"):
			return decodeUUID(val, &m.TaskUUID)
		case keyIs(key, "step_uuid"):
			return decodeUUID(val, &m.StepUUID)
		case keyIs(key, "step_name"):
			return decodeString(val, &m.StepName)
		case keyIs(key, "namespace"):
			return decodeString(val, &m.Namespace)
		case keyIs(key, "correlation_id"):
			return decodeUUID(val, &m.CorrelationID)
		case keyIs(key, "fired_at"):
			return json.Unmarshal(val, &m.FiredAt)
		case keyIs(key, "fired_by"):
			return decodeString(val, &m.FiredBy)
		}
		return nil
	})
}

func decodeExecutionResult(b []byte, r *ExecutionResult) error {
	if isNull(b) {
		return nil
	}
	return objectFields(b, func(key, val []byte) error {
		switch {
		case keyIs(key, "step_uuid"):
			return decodeUUID(val, &r.StepUUID)
		case keyIs(key, "success"):
			return json.Unmarshal(val, &r.Success)
		case keyIs(key, "status"):
			return decodeString(val, &r.Status)
		case keyIs(key, "result"):
			r.Result = bytes.Clone(val)
		case keyIs(key, "error"):
			if isNull(val) {
				r.Error = nil
				return nil
			}
			r.Error = new(StepError)
			return json.Unmarshal(val, r.Error)
		}
		return nil
	})
}

func keyIs(key []byte, name string) bool {
	return len(key) == len(name) && (string(key) == name || bytes.EqualFold(key, []byte(name)))
}

func isNull(b []byte) bool { return string(b) == "null" }

// decodeString decodes a JSON string, the common escape-free case without
// encoding/json. null leaves s unchanged, as json.Unmarshal does.
func decodeString(b []byte, s *string) error {
	if isNull(b) {
		return nil
	}
	if len(b) >= 2 && b[0] == '"' && bytes.IndexByte(b[1:len(b)-1], '\\') < 0 {
		*s = string(b[1 : len(b)-1])
		return nil
	}
	return json.Unmarshal(b, s)
}

func decodeUUID(b []byte, id *uuid.UUID) error {
	if isNull(b) {
		return nil
	}
	var s string
	if err := decodeString(b, &s); err != nil {
		return err
	}
	v, err := uuid.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid UUID %q: %w", s, err)
	}
	*id = v
	return nil
}

// structural marks the bytes valueEnd stops at inside an object or array.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

var errMalformed = errors.New("malformed JSON")

// objectFields calls fn with each key (still quoted-string content, escapes
// resolved) and raw value of the JSON object b, in order. null is an empty
// object.
func objectFields(b []byte, fn func(key, val []byte) error) error {
	i := skipSpace(b, 0)
	if i < len(b) && isNull(bytes.TrimSpace(b[i:])) {
		return nil
	}
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("%w: expected an object at offset %d", errMalformed, i)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return fmt.Errorf("%w: expected a key at offset %d", errMalformed, i)
		}
		end, err := stringEnd(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if err := json.Unmarshal(b[i:end], &k); err != nil {
				return err
			}
			key = []byte(k)
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return fmt.Errorf("%w: expected ':' at offset %d", errMalformed, i)
		}
		i = skipSpace(b, i+1)
		vend, err := valueEnd(b, i)
		if err != nil {
			return err
		}
		if err := fn(key, b[i:vend]); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return fmt.Errorf("%w: unterminated object", errMalformed)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return trailing(b, i+1)
		default:
			return fmt.Errorf("%w: expected ',' or '}' at offset %d", errMalformed, i)
		}
	}
}

// arrayElements calls fn with each raw element of the JSON array b, in
// order. null is an empty array.
func arrayElements(b []byte, fn func(elem []byte) error) error {
	i := skipSpace(b, 0)
	if i < len(b) && isNull(bytes.TrimSpace(b[i:])) {
		return nil
	}
	if i >= len(b) || b[i] != '[' {
		return fmt.Errorf("%w: expected an array at offset %d", errMalformed, i)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return trailing(b, i+1)
	}
	for {
		end, err := valueEnd(b, i)
		if err != nil {
			return err
		}
		if err := fn(b[i:end]); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return fmt.Errorf("%w: unterminated array", errMalformed)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return trailing(b, i+1)
		default:
			return fmt.Errorf("%w: expected ',' or ']' at offset %d", errMalformed, i)
		}
	}
}

func trailing(b []byte, i int) error {
	if i = skipSpace(b, i); i != len(b) {
		return fmt.Errorf("%w: data after the object at offset %d", errMalformed, i)
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the closing quote of the string at b[i]:
// the next quote not escaped by an odd run of backslashes.
func stringEnd(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			break
		}
		q := j + k
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
	}
	return 0, fmt.Errorf("%w: unterminated string at offset %d", errMalformed, i)
}

// valueEnd returns the index after the JSON value starting at b[i].
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("%w: expected a value at offset %d", errMalformed, i)
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			for j < len(b) && !structural[b[j]] {
				j++
			}
			if j == len(b) {
				break
			}
			switch b[j] {
			case '"':
				end, err := stringEnd(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("%w: unterminated value at offset %d", errMalformed, i)
	default:
		j := i
	scan:
		for ; j < len(b); j++ {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				break scan
			}
		}
		if j == i {
			return 0, fmt.Errorf("%w: expected a value at offset %d", errMalformed, i)
		}
		return j, nil
	}
}
