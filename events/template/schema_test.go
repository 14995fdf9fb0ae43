package template_test

import (
	"encoding/json"
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events/template"
)

func eventWithSchema(schema string) string {
	return `name: orders
namespace_name: orders
version: 1.0.0
steps:
  - name: validate
    handler: {callable: orders.validate}
    publishes_events:
      - name: order.validated
        description: The order is valid
        schema: ` + schema + "\n"
}

func TestDraft07Schemas(t *testing.T) {
	// Declared draft-07: tuple-form items is valid there.
	tpl := load(t, eventWithSchema(`{"$schema": "http://json-schema.org/draft-07/schema#", "type": "array", "items": [{"type": "string"}, {"type": "integer"}], "definitions": {"x": {"type": "string"}}}`))
	assert.Empty(t, tpl.Warnings)
	ev := tpl.Steps[0].Events[0]
	assert.Empty(t, ev.ValidatePayload([]any{"a", 1}))
	assert.Equal(t, []template.Violation{{Pointer: "/1", Message: "got string, want integer"}}, ev.ValidatePayload([]any{"a", "b"}))

	// Undeclared, valid only as draft-07: accepted with a warning.
	tpl = load(t, eventWithSchema(`{"type": "array", "items": [{"type": "string"}]}`))
	require.Len(t, tpl.Warnings, 1)
	assert.Equal(t, `t.yaml:10:17: steps[0].publishes_events[0].schema: schema is not valid JSON Schema draft 2020-12 but is valid draft-07; add "$schema": "http://json-schema.org/draft-07/schema#" to say so`, tpl.Warnings[0].String())

	// draft-07 style definitions + $ref work under the 2020-12 default.
	tpl = load(t, eventWithSchema(`{"definitions": {"id": {"type": "string"}}, "properties": {"id": {"$ref": "#/definitions/id"}}}`))
	assert.Empty(t, tpl.Warnings)
	assert.Equal(t, []template.Violation{{Pointer: "/id", Message: "got number, want string"}}, tpl.Steps[0].Events[0].ValidatePayload(map[string]any{"id": 5}))
}

func TestSchemaErrorsPointAtTheKeyword(t *testing.T) {
	_, err := template.Load("t.yaml", []byte(eventWithSchema(`
          type: object
          properties:
            id: {type: string, pattern: "(?=lookahead)"}
          required: [id]`)))
	require.Error(t, err)
	assert.Equal(t, "t.yaml:13:41: steps[0].publishes_events[0].schema: invalid JSON Schema: at \"/properties/id/pattern\": '(?=lookahead)' is not valid regex: error parsing regexp: invalid or unsupported Perl syntax: `(?=`", err.Error())

	_, err = template.Load("t.yaml", []byte(eventWithSchema(`{"$ref": "#/definitions/missing"}`)))
	require.Error(t, err)
	assert.Equal(t, `t.yaml:10:17: steps[0].publishes_events[0].schema: invalid JSON Schema: json-pointer in "#/definitions/missing" not found`, err.Error())

	_, err = template.Load("t.yaml", []byte(eventWithSchema(`.nan`)))
	require.Error(t, err)
	assert.Equal(t, `t.yaml:10:17: steps[0].publishes_events[0].schema: float .nan cannot be represented in JSON (no NaN or infinity)`, err.Error())

	_, err = template.Load("t.yaml", []byte(eventWithSchema(`{properties: {x: {enum: [1, .inf]}}}`)))
	require.Error(t, err)
	assert.Equal(t, `t.yaml:10:45: steps[0].publishes_events[0].schema.properties.x.enum[1]: float .inf cannot be represented in JSON (no NaN or infinity)`, err.Error())

	_, err = template.Load("t.yaml", []byte(eventWithSchema(`{type: object, type: array}`)))
	require.Error(t, err)
	assert.Equal(t, `t.yaml:10:32: steps[0].publishes_events[0].schema.type: duplicate key "type"; first defined at line 10`, err.Error())

	_, err = template.Load("t.yaml", []byte(eventWithSchema(`"object"`)))
	require.Error(t, err)
	assert.Equal(t, `t.yaml:10:17: steps[0].publishes_events[0].schema: invalid JSON Schema: at the root: got string, want boolean or object`, err.Error())
}

func TestCompiledSchemaValidate(t *testing.T) {
	c, err := template.CompileSchema(json.RawMessage(`{"type":"object","required":["a/b"],"properties":{"n":{"type":"integer","minimum":1},"list":{"items":{"type":"string"}}}}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"object","required":["a/b"],"properties":{"n":{"type":"integer","minimum":1},"list":{"items":{"type":"string"}}}}`, string(c.Raw()))

	assert.Empty(t, c.Validate(map[string]any{"a/b": 1, "n": 2}))
	assert.Empty(t, c.Validate([]byte(`{"a/b": null}`)))
	assert.Equal(t, []template.Violation{
		{Pointer: "", Message: "missing property 'a/b'"},
		{Pointer: "/list/1", Message: "got number, want string"},
		{Pointer: "/n", Message: "minimum: got 0, want 1"},
	}, c.Validate(map[string]any{"n": 0, "list": []any{"x", 2}}))

	// Structs are checked in their JSON form.
	type payload struct {
		AB int `json:"a/b"`
		N  int `json:"n"`
	}
	assert.Empty(t, c.Validate(payload{AB: 1, N: 3}))
	assert.Equal(t, []template.Violation{{Pointer: "/n", Message: "minimum: got 0, want 1"}}, c.Validate(payload{}))

	// Values with no JSON form are one violation, not a panic.
	assert.Len(t, c.Validate(math.NaN()), 1)
	assert.Len(t, c.Validate(json.RawMessage(`{not json`)), 1)
	assert.Len(t, c.Validate(map[string]any{"f": func() {}}), 1)

	var nilSchema *template.CompiledSchema
	assert.Nil(t, nilSchema.Validate("anything"))
	assert.Nil(t, nilSchema.Raw())

	_, err = template.CompileSchema(json.RawMessage(`{"type":"invalid_type"}`))
	assert.EqualError(t, err, `invalid JSON Schema: at "/type": value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'`)
	_, err = template.CompileSchema(json.RawMessage(`{`))
	assert.Error(t, err)
}

func TestCompiledSchemaConcurrentUse(t *testing.T) {
	tpl, err := template.LoadFile(goodFixture)
	require.NoError(t, err)
	ev, _ := tpl.Steps[1].Event("payment.processed")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				v := ev.ValidatePayload(map[string]any{"order_id": "o", "transaction_id": "t", "amount": i + j})
				assert.Empty(t, v)
			}
		})
	}
	wg.Wait()
}

// Numbers in a YAML schema keep the precision they are written with:
// integers beyond 64 bits and decimals beyond float64 (a const would
// otherwise accept the wrong value, or refuse the right one).
func TestSchemaNumbersKeepTheirPrecision(t *testing.T) {
	tpl, err := template.Load("p.yaml", []byte(`
name: p
namespace_name: p_ns
version: 1.0.0
steps:
  - name: s
    handler: {callable: h}
    publishes_events:
      - name: a.b
        description: d
        schema:
          type: object
          properties:
            big: {const: 12345678901234567891}
            dec: {const: 0.1000000000000000055511151231257827}
            yamlish: {const: .5}
`))
	require.NoError(t, err)
	st, ok := tpl.Step("s")
	require.True(t, ok)
	d, ok := st.Event("a.b")
	require.True(t, ok)
	for payload, valid := range map[string]bool{
		`{"big": 12345678901234567891}`:                 true,
		`{"big": 12345678901234567890}`:                 false,
		`{"dec": 0.1000000000000000055511151231257827}`: true,
		`{"dec": 0.1}`:     false,
		`{"yamlish": 0.5}`: true, // YAML-only spelling, converted through float64
	} {
		assert.Equal(t, valid, len(d.ValidatePayload(json.RawMessage(payload))) == 0, payload)
	}
}
