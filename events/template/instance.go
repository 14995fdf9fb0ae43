package template

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/stepevents/stepevents/internal/jsonscan"
)

// Instance is a JSON value decoded for validation. Decoding is most of the
// cost of validating raw JSON, and the events of one step completion often
// check the same payload against several schemas: decode it once with
// DecodeInstance, then call ValidateInstance per schema. The zero Instance
// is JSON null.
type Instance struct {
	v   any
	err error
}

// DecodeInstance decodes raw JSON as Validate does, numbers kept exact as
// json.Number; JSON that does not decode is one violation at "" for every
// schema.
func DecodeInstance(raw []byte) Instance {
	v, err := decodeJSON(raw)
	return Instance{v: v, err: err}
}

// decodeJSON decodes raw into the tree jsonschema.UnmarshalJSON gives
// (map[string]any, []any, string, json.Number, bool, nil), in one pass
// instead of encoding/json's scan, then decode, then check for trailing data.
// Anything it does not decode itself (malformed input, nesting deeper than
// encoding/json allows) goes to jsonschema.UnmarshalJSON, so errors read as
// they always did. FuzzDecodeJSON checks both agree.
func decodeJSON(raw []byte) (any, error) {
	d := instDecoder{s: raw}
	if v, i, ok := d.value(skipWS(raw, 0), 0); ok && skipWS(raw, i) == len(raw) {
		return v, nil
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(raw))
}

// maxNesting is encoding/json's nesting limit.
const maxNesting = 10000

type instDecoder struct{ s []byte }

func skipWS(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	return i
}

// value decodes the value at s[i] (not whitespace) and returns the index
// after it; ok is false for anything it leaves to encoding/json.
func (d *instDecoder) value(i, depth int) (v any, next int, ok bool) {
	s := d.s
	if i >= len(s) {
		return nil, i, false
	}
	switch b := s[i]; {
	case b == '"':
		str, j, ok := d.str(i)
		return str, j, ok
	case b == '{':
		return d.object(i, depth+1)
	case b == '[':
		return d.array(i, depth+1)
	case b == '-' || '0' <= b && b <= '9':
		j, ok := jsonscan.NumberEnd(s, i)
		if !ok {
			return nil, j, false
		}
		return json.Number(s[i:j]), j, true
	case b == 't' && hasLiteral(s, i, "true"):
		return true, i + 4, true
	case b == 'f' && hasLiteral(s, i, "false"):
		return false, i + 5, true
	case b == 'n' && hasLiteral(s, i, "null"):
		return nil, i + 4, true
	}
	return nil, i, false
}

func hasLiteral(s []byte, i int, lit string) bool {
	return len(s)-i >= len(lit) && string(s[i:i+len(lit)]) == lit
}

func (d *instDecoder) object(i, depth int) (any, int, bool) {
	s := d.s
	if depth > maxNesting {
		return nil, i, false
	}
	m := map[string]any{}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		return m, i + 1, true
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return nil, i, false
		}
		k, j, ok := d.str(i)
		if !ok {
			return nil, j, false
		}
		if i = skipWS(s, j); i >= len(s) || s[i] != ':' {
			return nil, i, false
		}
		v, j, ok := d.value(skipWS(s, i+1), depth)
		if !ok {
			return nil, j, false
		}
		m[k] = v // the last duplicate wins, as in encoding/json
		if i = skipWS(s, j); i >= len(s) {
			return nil, i, false
		}
		switch s[i] {
		case ',':
			i = skipWS(s, i+1)
		case '}':
			return m, i + 1, true
		default:
			return nil, i, false
		}
	}
}

func (d *instDecoder) array(i, depth int) (any, int, bool) {
	s := d.s
	if depth > maxNesting {
		return nil, i, false
	}
	a := make([]any, 0) // encoding/json decodes [] as empty, not nil
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == ']' {
		return a, i + 1, true
	}
	for {
		v, j, ok := d.value(i, depth)
		if !ok {
			return nil, j, false
		}
		a = append(a, v)
		if i = skipWS(s, j); i >= len(s) {
			return nil, i, false
		}
		switch s[i] {
		case ',':
			i = skipWS(s, i+1)
		case ']':
			return a, i + 1, true
		default:
			return nil, i, false
		}
	}
}

// str decodes the string at s[i]. Strings without escapes that are valid
// UTF-8 (nearly all) are copied; the rest are unquoted by encoding/json,
// which replaces invalid UTF-8 and lone surrogates as it always has.
func (d *instDecoder) str(i int) (string, int, bool) {
	s := d.s
	j := i + 1
	ascii := true
	for ; j < len(s); j++ {
		b := s[j]
		if b == '"' {
			seg := s[i+1 : j]
			if !ascii && !utf8.Valid(seg) {
				break
			}
			return string(seg), j + 1, true
		}
		if b == '\\' || b < 0x20 {
			break
		}
		if b >= utf8.RuneSelf {
			ascii = false
		}
	}
	for ; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			var str string
			if err := json.Unmarshal(s[i:j+1], &str); err != nil {
				return "", j + 1, false
			}
			return str, j + 1, true
		}
	}
	return "", j, false
}
