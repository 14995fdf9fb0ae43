package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/stepevents/stepevents/internal/jsonscan"
)

// Events are encoded by appending rather than with json.Marshal: reflection
// and encoding/json's byte-at-a-time re-compaction of the raw parts were most
// of the Go CPU of a step completion. The output is byte for byte what
// json.Marshal gives (FuzzAppendEvent checks it), because consumers and
// signatures see these bytes.

// errInvalidJSON is wrapped by the error of a raw part that is not valid
// JSON, where json.Marshal would fail too.
var errInvalidJSON = errors.New("invalid JSON")

// maxNestingDepth is encoding/json's limit: deeper raw JSON makes
// json.Marshal fail, so it makes appendEvent fail.
const maxNestingDepth = 10000

// maxMemo bounds an eventEncoder's memo: a completion has a handful of
// distinct raw parts, and a publisher emitting many distinct payloads must
// not make each lookup slower.
const maxMemo = 16

// eventEncoder encodes the events of one completion. Every event of a
// completion carries the same step context and result (and the default
// publisher's payload is that result), so each raw part is compacted once
// and copied thereafter. A nil *eventEncoder compacts every time.
type eventEncoder struct {
	memo []compacted
}

type compacted struct{ src, out []byte }

// appendEvent appends ev as json.Marshal(ev) encodes it; it fails where
// json.Marshal fails (a raw part that is not JSON, a time outside RFC 3339).
func appendEvent(dst []byte, ev *Event) ([]byte, error) {
	return (*eventEncoder)(nil).appendEvent(dst, ev)
}

// appendEvent is the package function, with e's memo of compacted raw parts.
func (e *eventEncoder) appendEvent(dst []byte, ev *Event) ([]byte, error) {
	n0 := len(dst)
	dst = slices.Grow(dst, sizeHint(ev))
	var err error
	dst = append(dst, `{"event_id":`...)
	dst = appendUUID(dst, ev.EventID)
	dst = append(dst, `,"event_name":`...)
	dst = appendString(dst, ev.EventName)
	dst = append(dst, `,"event_version":`...)
	dst = appendString(dst, ev.EventVersion)

	r := &ev.Payload.ExecutionResult
	dst = append(dst, `,"payload":{"execution_result":{"step_uuid":`...)
	dst = appendUUID(dst, r.StepUUID)
	dst = append(dst, `,"success":`...)
	dst = strconv.AppendBool(dst, r.Success)
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, r.Status)
	if len(r.Result) > 0 {
		dst = append(dst, `,"result":`...)
		if dst, err = e.appendRaw(dst, r.Result); err != nil {
			return dst[:n0], fieldError("payload.execution_result.result", err)
		}
	}
	if r.Error != nil {
		dst = append(dst, `,"error":`...)
		dst = appendStepError(dst, r.Error)
	}
	dst = append(dst, `},"payload":`...)
	if dst, err = e.appendRaw(dst, ev.Payload.Payload); err != nil {
		return dst[:n0], fieldError("payload.payload", err)
	}
	dst = append(dst, `,"task_sequence_step":`...)
	if dst, err = e.appendRaw(dst, ev.Payload.TaskSequenceStep); err != nil {
		return dst[:n0], fieldError("payload.task_sequence_step", err)
	}

	m := &ev.Metadata
	dst = append(dst, `},"metadata":{"task_uuid":`...)
	dst = appendUUID(dst, m.TaskUUID)
	dst = append(dst, `,"step_uuid":`...)
	dst = appendUUID(dst, m.StepUUID)
	dst = append(dst, `,"step_name":`...)
	dst = appendString(dst, m.StepName)
	dst = append(dst, `,"namespace":`...)
	dst = appendString(dst, m.Namespace)
	dst = append(dst, `,"correlation_id":`...)
	dst = appendUUID(dst, m.CorrelationID)
	dst = append(dst, `,"fired_at":"`...)
	// time.Time.MarshalJSON is this, quoted: strict RFC 3339 with nanoseconds.
	t, err := m.FiredAt.AppendText(dst)
	if err != nil {
		return dst[:n0], fieldError("metadata.fired_at", err)
	}
	dst = append(t, `","fired_by":`...)
	dst = appendString(dst, m.FiredBy)
	return append(dst, "}}"...), nil
}

// sizeHint is about the length of ev's JSON, so that encoding it
// allocates once: the keys and fixed-size values, plus the strings and raw
// parts (whose compaction usually shrinks them).
func sizeHint(ev *Event) int {
	return 560 + len(ev.EventName) + len(ev.EventVersion) + len(ev.Payload.ExecutionResult.Status) +
		len(ev.Payload.ExecutionResult.Result) + len(ev.Payload.Payload) + len(ev.Payload.TaskSequenceStep) +
		len(ev.Metadata.StepName) + len(ev.Metadata.Namespace) + len(ev.Metadata.FiredBy)
}

func fieldError(field string, err error) error {
	return fmt.Errorf("error encoding %s: %w", field, err)
}

// appendHeaders appends the pgmq headers of a durable event, as
// json.Marshal(map[string]string{"event_name": name, "event_id": id.String()})
// encodes them (map keys sorted).
func appendHeaders(dst []byte, id uuid.UUID, name string) []byte {
	dst = slices.Grow(dst, 72+len(name))
	dst = append(dst, `{"event_id":`...)
	dst = appendUUID(dst, id)
	dst = append(dst, `,"event_name":`...)
	dst = appendString(dst, name)
	return append(dst, '}')
}

func appendStepError(dst []byte, se *StepError) []byte {
	dst = append(dst, `{"message":`...)
	dst = appendString(dst, se.Message)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, se.Type)
	dst = append(dst, `,"code":`...)
	dst = appendString(dst, se.Code)
	dst = append(dst, `,"retryable":`...)
	dst = strconv.AppendBool(dst, se.Retryable)
	dst = append(dst, `,"attempt":`...)
	dst = strconv.AppendInt(dst, int64(se.Attempt), 10)
	dst = append(dst, `,"max_attempts":`...)
	dst = strconv.AppendInt(dst, int64(se.MaxAttempts), 10)
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendUUID appends id quoted, as its MarshalText.
func appendUUID(dst []byte, id uuid.UUID) []byte {
	dst = append(dst, '"')
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0xF])
	}
	return append(dst, '"')
}

// htmlSafe marks the ASCII bytes encoding/json copies into a string
// unescaped (its htmlSafeSet): printable, not '"', '\\', '<', '>' or '&'.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// appendString appends s quoted and escaped as encoding/json's Marshal does:
// HTML characters and U+2028/U+2029 as \uXXXX, invalid UTF-8 as \ufffd.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if htmlSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendRaw appends raw as json.Marshal encodes a json.RawMessage: null when
// nil, else compacted with HTML characters escaped, failing when raw is not
// valid JSON.
func (e *eventEncoder) appendRaw(dst []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(dst, "null"...), nil
	}
	if e == nil {
		return appendCompact(dst, raw)
	}
	out, err := e.compact(raw)
	if err != nil {
		return dst, err
	}
	return append(dst, out...), nil
}

// compact returns raw compacted, from the memo when the same bytes were
// compacted before. It fails when raw is not valid JSON. The memo keeps its
// own copy of raw: a publisher may reuse its buffer, or change
// StepContext.Result, between the events of a completion.
func (e *eventEncoder) compact(raw []byte) ([]byte, error) {
	for _, m := range e.memo {
		if bytes.Equal(m.src, raw) {
			return m.out, nil
		}
	}
	// One allocation for the copy and the compacted form, which is rarely
	// longer than raw.
	buf := make([]byte, len(raw), 2*len(raw)+16)
	copy(buf, raw)
	out, err := appendCompact(buf[len(raw):], raw)
	if err != nil {
		return nil, err
	}
	if e.memo == nil {
		e.memo = make([]compacted, 0, 4) // the step context, the result, a payload or two
	}
	if len(e.memo) < maxMemo {
		e.memo = append(e.memo, compacted{src: buf[:len(raw):len(raw)], out: out})
	}
	return out, nil
}

// appendCompact appends src as encoding/json compacts a Marshaler's output:
// whitespace outside strings dropped, '<', '>', '&' and U+2028/U+2029 (in
// strings, the only place valid JSON has them) escaped as \uXXXX, all else
// copied as is (invalid UTF-8 included). Unlike encoding/json's compaction,
// which steps a state machine per byte, it parses by recursive descent and
// copies runs of plain string bytes at once. src that is not exactly one
// valid JSON value gives an error wrapping errInvalidJSON, and dst unchanged.
func appendCompact(dst, src []byte) ([]byte, error) {
	out, i, err := compactValue(dst, src, skipSpace(src, 0), 0)
	if err == nil && skipSpace(src, i) < len(src) {
		err = unexpected(src, skipSpace(src, i), "after the top-level value")
	}
	if err != nil {
		return dst, err
	}
	return out, nil
}

func skipSpace(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	return i
}

func unexpected(s []byte, i int, where string) error {
	if i >= len(s) {
		return fmt.Errorf("%w: unexpected end of input", errInvalidJSON)
	}
	return fmt.Errorf("%w: unexpected %q at offset %d %s", errInvalidJSON, s[i], i, where)
}

// The compact functions append the compacted value starting at s[i] (not
// whitespace), inside depth containers, and return the index after it.
// dst is passed and returned, not kept in a struct: appending through a
// pointer costs a write barrier per append while the GC runs.

func compactValue(dst, s []byte, i, depth int) ([]byte, int, error) {
	if i >= len(s) {
		return dst, i, unexpected(s, i, "")
	}
	switch b := s[i]; {
	case b == '"':
		return compactString(dst, s, i)
	case b == '{':
		return compactObject(dst, s, i, depth+1)
	case b == '[':
		return compactArray(dst, s, i, depth+1)
	case b == '-' || '0' <= b && b <= '9':
		return compactNumber(dst, s, i)
	case b == 't':
		return compactLiteral(dst, s, i, "true")
	case b == 'f':
		return compactLiteral(dst, s, i, "false")
	case b == 'n':
		return compactLiteral(dst, s, i, "null")
	}
	return dst, i, unexpected(s, i, "looking for a value")
}

func compactObject(dst, s []byte, i, depth int) ([]byte, int, error) {
	if depth > maxNestingDepth {
		return dst, i, fmt.Errorf("%w: exceeded max depth at offset %d", errInvalidJSON, i)
	}
	dst = append(dst, '{')
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return append(dst, '}'), i + 1, nil
	}
	var err error
	for {
		if i >= len(s) || s[i] != '"' {
			return dst, i, unexpected(s, i, "looking for an object key")
		}
		if dst, i, err = compactString(dst, s, i); err != nil {
			return dst, i, err
		}
		if i = skipSpace(s, i); i >= len(s) || s[i] != ':' {
			return dst, i, unexpected(s, i, "after an object key")
		}
		dst = append(dst, ':')
		if dst, i, err = compactValue(dst, s, skipSpace(s, i+1), depth); err != nil {
			return dst, i, err
		}
		if i = skipSpace(s, i); i >= len(s) {
			return dst, i, unexpected(s, i, "")
		}
		switch s[i] {
		case ',':
			dst = append(dst, ',')
			i = skipSpace(s, i+1)
		case '}':
			return append(dst, '}'), i + 1, nil
		default:
			return dst, i, unexpected(s, i, "after an object value")
		}
	}
}

func compactArray(dst, s []byte, i, depth int) ([]byte, int, error) {
	if depth > maxNestingDepth {
		return dst, i, fmt.Errorf("%w: exceeded max depth at offset %d", errInvalidJSON, i)
	}
	dst = append(dst, '[')
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == ']' {
		return append(dst, ']'), i + 1, nil
	}
	var err error
	for {
		if dst, i, err = compactValue(dst, s, i, depth); err != nil {
			return dst, i, err
		}
		if i = skipSpace(s, i); i >= len(s) {
			return dst, i, unexpected(s, i, "")
		}
		switch s[i] {
		case ',':
			dst = append(dst, ',')
			i = skipSpace(s, i+1)
		case ']':
			return append(dst, ']'), i + 1, nil
		default:
			return dst, i, unexpected(s, i, "after an array element")
		}
	}
}

// strPlain marks the bytes a string's compaction copies without a second
// look: not its end, an escape, a control character, an HTML character, or
// 0xE2 (the first byte of U+2028 and U+2029).
var strPlain = func() (t [256]bool) {
	for b := 0x20; b < 256; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' && b != 0xE2
	}
	return t
}()

func compactString(dst, s []byte, i int) ([]byte, int, error) {
	start := i
	i++
	for {
		for i < len(s) && strPlain[s[i]] {
			i++
		}
		if i >= len(s) {
			return dst, i, unexpected(s, i, "")
		}
		switch b := s[i]; {
		case b == '"':
			return append(dst, s[start:i+1]...), i + 1, nil
		case b == '\\':
			if i+1 >= len(s) {
				return dst, i + 1, unexpected(s, i+1, "")
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(s) || !isHex(s[k]) {
						return dst, k, unexpected(s, k, `in a \u escape`)
					}
				}
				i += 6
			default:
				return dst, i + 1, unexpected(s, i+1, "in a string escape")
			}
		case b < 0x20:
			return dst, i, unexpected(s, i, "in a string")
		case b == '<' || b == '>' || b == '&':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			i++
			start = i
		default: // 0xE2
			if i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[s[i+2]&0xF])
				i += 3
				start = i
			} else {
				i++
			}
		}
	}
}

func isHex(b byte) bool { return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' }

// compactNumber copies the number at s[i].
func compactNumber(dst, s []byte, i int) ([]byte, int, error) {
	j, ok := jsonscan.NumberEnd(s, i)
	if !ok {
		return dst, j, unexpected(s, j, "in a number")
	}
	return append(dst, s[i:j]...), j, nil
}

func compactLiteral(dst, s []byte, i int, lit string) ([]byte, int, error) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(s) || s[i+k] != lit[k] {
			return dst, i + k, unexpected(s, i+k, "in literal "+lit)
		}
	}
	return append(dst, lit...), i + len(lit), nil
}
