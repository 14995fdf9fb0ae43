package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaURL is the in-memory location each schema is compiled under; it is
// stripped from error messages.
const schemaURL = "stepevents:///schema.json"

var printer = message.NewPrinter(language.English)

// CompiledSchema is a JSON Schema compiled once at load time, so validating
// a payload at publish time costs no compilation. It is safe for concurrent
// use. A nil *CompiledSchema accepts everything (no schema declared).
type CompiledSchema struct {
	schema *jsonschema.Schema
	raw    json.RawMessage
}

// Violation is one way a value fails its schema.
type Violation struct {
	// Pointer is the RFC 6901 JSON pointer of the offending value in the
	// instance ("" = the whole value).
	Pointer string
	// Message says what the schema expected.
	Message string
}

// String formats the violation as `at "/pointer": message`.
func (v Violation) String() string { return fmt.Sprintf("at %q: %s", v.Pointer, v.Message) }

// Raw returns the schema document as JSON.
func (c *CompiledSchema) Raw() json.RawMessage {
	if c == nil {
		return nil
	}
	return c.raw
}

// Validate checks v and returns every violation (nil when valid). v may be a
// decoded JSON value (map[string]any, []any, …), raw JSON as json.RawMessage
// or []byte, or any value encoding/json can marshal (structs are checked in
// their JSON form). A value that cannot be encoded is one violation at "".
func (c *CompiledSchema) Validate(v any) []Violation {
	if c == nil {
		return nil
	}
	inst, err := jsonInstance(v)
	return c.ValidateInstance(Instance{v: inst, err: err})
}

// ValidateInstance is Validate for a value decoded by DecodeInstance, so a
// payload checked against several schemas is decoded once.
func (c *CompiledSchema) ValidateInstance(inst Instance) []Violation {
	if c == nil {
		return nil
	}
	if inst.err != nil {
		return []Violation{{Pointer: "", Message: "value is not valid JSON: " + inst.err.Error()}}
	}
	err := c.schema.Validate(inst.v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Violation{{Pointer: "", Message: err.Error()}}
	}
	var out []Violation
	for _, leaf := range leaves(ve, false) {
		out = append(out, Violation{Pointer: pointer(leaf.InstanceLocation), Message: leaf.ErrorKind.LocalizedString(printer)})
	}
	slices.SortFunc(out, func(a, b Violation) int {
		return strings.Compare(a.Pointer+"\x00"+a.Message, b.Pointer+"\x00"+b.Message)
	})
	return slices.Compact(out)
}

// CompileSchema compiles a JSON Schema document, for callers that hold a
// schema outside a template (e.g. a definition read back from storage). It
// applies the same rules as Load: draft 2020-12 unless $schema says
// otherwise (draft-07 fallback for documents without $schema), formats
// asserted, no external references.
func CompileSchema(raw json.RawMessage) (*CompiledSchema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("invalid JSON Schema: not JSON: %w", err)
	}
	c, _, serr := compileDoc(doc, raw)
	if serr != nil {
		return nil, errors.New(serr.message())
	}
	return c, nil
}

// schemaError is a compilation failure; ptr locates the offending keyword
// inside the schema document when known.
type schemaError struct {
	ptr []string
	msg string
}

func (e *schemaError) message() string { return "invalid JSON Schema: " + e.msg }

// compileDoc compiles doc (the decoded form of raw). draft07 reports that
// the draft-07 fallback was needed.
func compileDoc(doc any, raw json.RawMessage) (c *CompiledSchema, draft07 bool, serr *schemaError) {
	sch, err := compileWith(doc, jsonschema.Draft2020)
	if err != nil {
		if obj, ok := doc.(map[string]any); ok && obj["$schema"] == nil {
			if sch7, err7 := compileWith(doc, jsonschema.Draft7); err7 == nil {
				return &CompiledSchema{schema: sch7, raw: raw}, true, nil
			}
		}
		return nil, false, explain(err)
	}
	return &CompiledSchema{schema: sch, raw: raw}, false, nil
}

func compileWith(doc any, draft *jsonschema.Draft) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(draft)
	c.AssertFormat()
	c.UseLoader(noExternalRefs{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	return c.Compile(schemaURL)
}

// noExternalRefs refuses every URL: templates must be self-contained, and a
// loader that reads files or the network would be a hazard.
type noExternalRefs struct{}

// Load refuses url; the compiler reports it as an invalid schema.
func (noExternalRefs) Load(url string) (any, error) {
	return nil, fmt.Errorf("external references are not allowed; templates must be self-contained")
}

// explain turns a compiler error into a short message and a location.
func explain(err error) *schemaError {
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
		ls := leaves(ve, true)
		parts := make([]string, 0, len(ls))
		for _, l := range ls {
			parts = append(parts, fmt.Sprintf("at %s: %s", where(l.InstanceLocation), l.ErrorKind.LocalizedString(printer)))
		}
		parts = slices.Compact(parts)
		var ptr []string
		if len(ls) > 0 {
			ptr = ls[0].InstanceLocation
		}
		return &schemaError{ptr: ptr, msg: strings.Join(parts, "; ")}
	}
	var lue *jsonschema.LoadURLError
	if errors.As(err, &lue) {
		return &schemaError{msg: fmt.Sprintf("cannot load %q: external references are not allowed; templates must be self-contained", lue.URL)}
	}
	msg := strings.ReplaceAll(err.Error(), schemaURL, "")
	return &schemaError{msg: msg}
}

// leaves flattens a validation error tree to its most specific causes. With
// firstAlternative, only the first branch of anyOf/oneOf is kept (used for
// metaschema errors, where the other branches only restate the same fault).
func leaves(e *jsonschema.ValidationError, firstAlternative bool) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	if firstAlternative {
		switch e.ErrorKind.(type) {
		case *kind.AnyOf, *kind.OneOf:
			return leaves(e.Causes[0], true)
		}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c, firstAlternative)...)
	}
	return out
}

func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return sb.String()
}

func where(tokens []string) string {
	if len(tokens) == 0 {
		return "the root"
	}
	return fmt.Sprintf("%q", pointer(tokens))
}

// jsonInstance brings v into the form the validator understands.
func jsonInstance(v any) (any, error) {
	switch x := v.(type) {
	case json.RawMessage:
		return decodeJSON(x)
	case []byte:
		return decodeJSON(x)
	}
	if isJSONTree(v, 0) {
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return decodeJSON(b)
}

// isJSONTree reports whether v already consists only of the types the
// validator accepts, so the common case avoids a marshal round trip.
func isJSONTree(v any, depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	switch x := v.(type) {
	case nil, bool, string, json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return true
	case float64:
		return !isNaNOrInf(x)
	case []any:
		for _, e := range x {
			if !isJSONTree(e, depth+1) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range x {
			if !isJSONTree(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

func isNaNOrInf(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
