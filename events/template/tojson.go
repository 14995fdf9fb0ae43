package template

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stepevents/stepevents/internal/jsonscan"
)

// Limits on the YAML → JSON conversion, so hostile input (alias bombs, deep
// nesting) cannot make Load slow or exhaust the stack.
const (
	maxJSONNodes = 1 << 20
	maxJSONDepth = 512
)

// convError is a value that has no JSON form, located at its node.
type convError struct {
	node *yaml.Node
	msg  string
	rev  []pathTok // path below the converted node, innermost first
}

// pathTok is a mapping key or, when isIndex, a sequence index.
type pathTok struct {
	key     string
	index   int
	isIndex bool
}

// toJSON converts the YAML value n to a JSON value tree (map[string]any,
// []any, string, bool, nil, json.Number) and reports a problem at the
// offending node when it cannot be converted.
func (d *decoder) toJSON(n *yaml.Node, path string) (any, bool) {
	if d.overflow {
		return nil, false // already reported once; do not repeat for every schema
	}
	v, cerr := d.convert(n, 0)
	if cerr == nil {
		return v, true
	}
	d.overflow = d.budget < 0
	for i := len(cerr.rev) - 1; i >= 0; i-- {
		if tok := cerr.rev[i]; tok.isIndex {
			path = index(path, tok.index)
		} else {
			path = join(path, tok.key)
		}
	}
	d.errorf(cerr.node, path, "%s", cerr.msg)
	return nil, false
}

func (d *decoder) convert(n *yaml.Node, depth int) (any, *convError) {
	d.budget--
	if d.budget < 0 {
		return nil, &convError{node: n, msg: fmt.Sprintf("document too large: more than %d values after alias expansion", maxJSONNodes)}
	}
	if depth > maxJSONDepth {
		return nil, &convError{node: n, msg: fmt.Sprintf("nested more than %d levels deep", maxJSONDepth)}
	}
	r := deref(n)
	switch r.Kind {
	case yaml.MappingNode:
		obj := make(map[string]any, len(r.Content)/2)
		lines := make(map[string]int, len(r.Content)/2)
		for i := 0; i+1 < len(r.Content); i += 2 {
			k := deref(r.Content[i])
			if k.Kind != yaml.ScalarNode {
				return nil, &convError{node: k, msg: "keys must be plain strings, got " + describe(k)}
			}
			if k.ShortTag() == "!!merge" {
				return nil, &convError{node: k, msg: "YAML merge keys (<<) are not supported; repeat the keys or alias the whole value", rev: []pathTok{{key: k.Value}}}
			}
			if l, dup := lines[k.Value]; dup {
				return nil, &convError{node: k, msg: fmt.Sprintf("duplicate key %q; first defined at line %d", k.Value, l), rev: []pathTok{{key: k.Value}}}
			}
			lines[k.Value] = k.Line
			v, err := d.convert(r.Content[i+1], depth+1)
			if err != nil {
				err.rev = append(err.rev, pathTok{key: k.Value})
				return nil, err
			}
			obj[k.Value] = v
		}
		return obj, nil
	case yaml.SequenceNode:
		arr := make([]any, 0, len(r.Content))
		for i, c := range r.Content {
			v, err := d.convert(c, depth+1)
			if err != nil {
				err.rev = append(err.rev, pathTok{index: i, isIndex: true})
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	case yaml.ScalarNode:
		return scalarJSON(r)
	}
	return nil, &convError{node: r, msg: "unsupported YAML node"}
}

// scalarJSON converts a scalar by its resolved tag. Timestamps and binary
// stay strings (their text), as JSON has no such types.
func scalarJSON(n *yaml.Node) (any, *convError) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, &convError{node: n, msg: "invalid boolean " + n.Value}
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return json.Number(strconv.FormatInt(i, 10)), nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return json.Number(strconv.FormatUint(u, 10)), nil
		}
		if b, ok := new(big.Int).SetString(strings.ReplaceAll(n.Value, "_", ""), 0); ok {
			return json.Number(b.String()), nil
		}
		return nil, &convError{node: n, msg: "integer " + n.Value + " cannot be represented in JSON"}
	case "!!float":
		// Written as a JSON number: kept as written, so a schema's long
		// decimals (const, enum, bounds) are not rounded to float64.
		if j, ok := jsonscan.NumberEnd([]byte(n.Value), 0); ok && j == len(n.Value) {
			return json.Number(n.Value), nil
		}
		var f float64
		if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, &convError{node: n, msg: "float " + n.Value + " cannot be represented in JSON (no NaN or infinity)"}
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	case "!!str", "!!timestamp", "!!binary":
		return n.Value, nil
	}
	return nil, &convError{node: n, msg: fmt.Sprintf("values tagged %s cannot be represented in JSON", n.Tag)}
}

// marshalJSON encodes a JSON value tree compactly, without HTML escaping, so
// stored definitions stay readable.
func marshalJSON(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
