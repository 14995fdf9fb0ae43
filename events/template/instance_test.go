package template

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
)

var decodeCases = []string{
	`{"order_id": "0192f0c4", "amount": 42.5, "n": -0, "big": 123456789012345678901234567890, "e": 1E-7}`,
	` [ 1 , "two" , { } , [ ] , null , true , false ] `, `{"a": 1, "a": 2}`, `{"": {"": [""]}}`,
	`"esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00 \ud800 \udc00x \u0000"`, "\"raw \xff\xfe \xe2\x80 é 😀\"",
	"\"\u2028<&>\"", `0`, `-1.5e+300`, `true`, `null`, `[[[[[]]]]]`, "{\"k\u00e9\\u00e9\": 1}",
	// malformed
	``, ` `, `{`, `[1,]`, `{"a":}`, `{"a" 1}`, `01`, `1.`, `-`, `1e`, `tru`, `nulll`, `{} x`, `1 2`, "\"\x01\"",
	`"\q"`, `"\u12G4"`, `"unterminated`, `{1:2}`, `NaN`, `[1 2]`, `{"a":1}}`, "\xef\xbb\xbf{}",
}

// requireSameAsUnmarshalJSON checks decodeJSON, and the fast decoder on its
// own, against jsonschema.UnmarshalJSON (what Validate decoded with before).
func requireSameAsUnmarshalJSON(t *testing.T, raw []byte) {
	t.Helper()
	want, wantErr := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	got, err := decodeJSON(raw)
	if wantErr != nil {
		require.EqualError(t, err, wantErr.Error())
	} else {
		require.NoError(t, err)
		require.Equal(t, want, got)
	}

	d := instDecoder{s: raw}
	fast, i, ok := d.value(skipWS(raw, 0), 0)
	ok = ok && skipWS(raw, i) == len(raw)
	require.Equal(t, wantErr == nil, ok, "the fast decoder accepts exactly what encoding/json accepts")
	if ok {
		require.Equal(t, want, fast)
	}
}

func TestDecodeJSONMatchesUnmarshalJSON(t *testing.T) {
	for _, raw := range decodeCases {
		t.Run(raw, func(t *testing.T) { requireSameAsUnmarshalJSON(t, []byte(raw)) })
	}
	for _, depth := range []int{maxNesting, maxNesting + 1} {
		requireSameAsUnmarshalJSON(t, []byte(strings.Repeat("[", depth)+strings.Repeat("]", depth)))
		requireSameAsUnmarshalJSON(t, []byte(strings.Repeat(`{"k":`, depth)+"1"+strings.Repeat("}", depth)))
	}
}

// FuzzDecodeJSON checks the validator's instance is exactly what
// jsonschema.UnmarshalJSON decodes, numbers included, and that malformed
// JSON fails with its error.
func FuzzDecodeJSON(f *testing.F) {
	for _, raw := range decodeCases {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { requireSameAsUnmarshalJSON(t, raw) })
}

// TestValidateInstanceVerdicts checks a payload decoded once and validated
// against several schemas, in any order, gets each schema's verdict as when
// decoded by jsonschema.UnmarshalJSON for each one: the validator does not
// change the instance it is given.
func TestValidateInstanceVerdicts(t *testing.T) {
	schemas := []string{
		`{"type":"object","required":["order_id","amount"],"properties":{"order_id":{"type":"string","format":"uuid"},"amount":{"type":"number","exclusiveMinimum":0}}}`,
		`{"type":"object","properties":{"order_id":true,"amount":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"},"uniqueItems":true}},"additionalProperties":false}`,
		`{"type":"object","properties":{"amount":{"multipleOf":0.1,"maximum":100}},"unevaluatedProperties":{"type":"string"}}`,
		`{"anyOf":[{"required":["error"]},{"properties":{"amount":{"const":42.5}}}]}`,
		`{"type":"array"}`,
		`true`,
	}
	payloads := []string{
		`{"order_id": "0192f0c4-1b2c-7d3e-8f40-123456789abc", "amount": 42.5, "tags": ["a", "b"]}`,
		`{"order_id": "not-a-uuid", "amount": 0, "tags": ["a", "a"], "extra": 1}`,
		`{"amount": 12345678901234567890123456789.1}`,
		`{"amount": 100.00000000000000000001, "note": "x"}`,
		`[1, 2]`, `null`, `{"a": `,
	}
	// (additionalProperties lists the extra keys in map order: one extra key
	// per payload keeps the messages comparable.)
	compiled := make([]*CompiledSchema, len(schemas))
	for i, s := range schemas {
		c, err := CompileSchema(json.RawMessage(s))
		require.NoError(t, err, s)
		compiled[i] = c
	}
	for _, p := range payloads {
		inst := DecodeInstance([]byte(p))
		for round := range 2 {
			for k := range compiled {
				c := compiled[k]
				if round == 1 {
					c = compiled[len(compiled)-1-k]
				}
				var want []Violation
				if ref, err := jsonschema.UnmarshalJSON(strings.NewReader(p)); err != nil {
					want = []Violation{{Pointer: "", Message: "value is not valid JSON: " + err.Error()}}
				} else {
					want = c.Validate(ref)
				}
				require.Equal(t, want, c.ValidateInstance(inst), "payload %s, schema %s", p, c.Raw())
				require.Equal(t, want, c.Validate(json.RawMessage(p)), "payload %s, schema %s", p, c.Raw())
			}
		}
	}
	var none *CompiledSchema
	require.Nil(t, none.ValidateInstance(DecodeInstance([]byte(`{`))))
	require.Empty(t, compiled[len(compiled)-1].ValidateInstance(Instance{}), "the zero Instance is null")
}
