// Package jsonscan splits JSON objects and arrays into their raw members in
// one pass, for documents already known to be valid (jsonb text, or a part
// of a document encoding/json has validated). encoding/json validates a
// document, then walks it again to decode it, and again over each
// json.RawMessage; on stepevents' hot paths (the consumer, the listener) the
// large parts of an event are kept raw, so splitting once is most of the
// work. Malformed input gives an error, never a panic.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// KeyIs reports whether key matches name as encoding/json matches struct
// field names: exactly, or else case-insensitively.
func KeyIs(key []byte, name string) bool {
	return len(key) == len(name) && (string(key) == name || bytes.EqualFold(key, []byte(name)))
}

// IsNull reports the JSON literal null.
func IsNull(b []byte) bool { return string(b) == "null" }

// String decodes a JSON string, the common escape-free case without
// encoding/json. null leaves s unchanged, as json.Unmarshal does.
func String(b []byte, s *string) error {
	if IsNull(b) {
		return nil
	}
	if len(b) >= 2 && b[0] == '"' && bytes.IndexByte(b[1:len(b)-1], '\\') < 0 {
		*s = string(b[1 : len(b)-1])
		return nil
	}
	return json.Unmarshal(b, s)
}

// Bool decodes a JSON boolean. null leaves v unchanged, as json.Unmarshal
// does.
func Bool(b []byte, v *bool) error {
	switch string(b) {
	case "true":
		*v = true
	case "false":
		*v = false
	case "null":
	default:
		return fmt.Errorf("%w: %q is not a boolean", ErrMalformed, b)
	}
	return nil
}

// Int decodes a JSON integer that fits an int. null leaves v unchanged, as
// json.Unmarshal does.
func Int(b []byte, v *int) error {
	if IsNull(b) {
		return nil
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return fmt.Errorf("%w: %q is not an integer", ErrMalformed, b)
	}
	*v = n
	return nil
}

// structural marks the bytes valueEnd stops at inside an object or array.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// ErrMalformed is wrapped by every error of a malformed document.
var ErrMalformed = errors.New("malformed JSON")

// ObjectFields calls fn with each key (still quoted-string content, escapes
// resolved) and raw value of the JSON object b, in order. null is an empty
// object.
func ObjectFields(b []byte, fn func(key, val []byte) error) error {
	i := skipSpace(b, 0)
	if i < len(b) && IsNull(bytes.TrimSpace(b[i:])) {
		return nil
	}
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("%w: expected an object at offset %d", ErrMalformed, i)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return fmt.Errorf("%w: expected a key at offset %d", ErrMalformed, i)
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
			return fmt.Errorf("%w: expected ':' at offset %d", ErrMalformed, i)
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
			return fmt.Errorf("%w: unterminated object", ErrMalformed)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return trailing(b, i+1)
		default:
			return fmt.Errorf("%w: expected ',' or '}' at offset %d", ErrMalformed, i)
		}
	}
}

// ArrayElements calls fn with each raw element of the JSON array b, in
// order. null is an empty array.
func ArrayElements(b []byte, fn func(elem []byte) error) error {
	i := skipSpace(b, 0)
	if i < len(b) && IsNull(bytes.TrimSpace(b[i:])) {
		return nil
	}
	if i >= len(b) || b[i] != '[' {
		return fmt.Errorf("%w: expected an array at offset %d", ErrMalformed, i)
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
			return fmt.Errorf("%w: unterminated array", ErrMalformed)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return trailing(b, i+1)
		default:
			return fmt.Errorf("%w: expected ',' or ']' at offset %d", ErrMalformed, i)
		}
	}
}

func trailing(b []byte, i int) error {
	if i = skipSpace(b, i); i != len(b) {
		return fmt.Errorf("%w: data after the object at offset %d", ErrMalformed, i)
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
	return 0, fmt.Errorf("%w: unterminated string at offset %d", ErrMalformed, i)
}

// valueEnd returns the index after the JSON value starting at b[i].
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("%w: expected a value at offset %d", ErrMalformed, i)
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
		return 0, fmt.Errorf("%w: unterminated value at offset %d", ErrMalformed, i)
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
			return 0, fmt.Errorf("%w: expected a value at offset %d", ErrMalformed, i)
		}
		return j, nil
	}
}

// NumberEnd returns the index after the JSON number at b[i], and whether
// there is one there: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?. On
// false the index is where the number went wrong.
func NumberEnd(b []byte, i int) (int, bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && '1' <= b[j] && b[j] <= '9':
		j = digits(b, j)
	default:
		return j, false
	}
	if j < len(b) && b[j] == '.' {
		k := digits(b, j+1)
		if k == j+1 {
			return k, false
		}
		j = k
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := digits(b, j)
		if k == j {
			return k, false
		}
		j = k
	}
	return j, true
}

func digits(b []byte, j int) int {
	for j < len(b) && '0' <= b[j] && b[j] <= '9' {
		j++
	}
	return j
}
