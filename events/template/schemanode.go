package template

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// schema converts a YAML schema node to JSON and compiles it, reporting a
// compile failure at the offending keyword's node.
func (d *decoder) schema(n *yaml.Node, path string) (json.RawMessage, *CompiledSchema) {
	v, ok := d.toJSON(n, path)
	if !ok {
		return nil, nil
	}
	raw, err := marshalJSON(v)
	if err != nil {
		d.errorf(n, path, "cannot encode as JSON: %v", err)
		return nil, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		d.errorf(n, path, "cannot encode as JSON: %v", err)
		return nil, nil
	}
	c, draft07, serr := compileDoc(doc, raw)
	if serr != nil {
		d.errorf(nodeAt(n, serr.ptr), path, "%s", serr.message())
		return nil, nil
	}
	if draft07 {
		d.warnf(n, path, "schema is not valid JSON Schema draft 2020-12 but is valid draft-07; add \"$schema\": \"http://json-schema.org/draft-07/schema#\" to say so")
	}
	return raw, c
}

// nodeAt follows JSON pointer tokens into a YAML node and returns the
// deepest node reached, so a problem points at the faulty keyword.
func nodeAt(n *yaml.Node, tokens []string) *yaml.Node {
	cur := n
	for _, tok := range tokens {
		r := deref(cur)
		var next *yaml.Node
		switch r.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(r.Content); i += 2 {
				if r.Content[i].Value == tok {
					next = r.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(r.Content) {
				next = r.Content[i]
			}
		}
		if next == nil {
			return cur
		}
		cur = next
	}
	return cur
}
