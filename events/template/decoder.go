package template

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// decoder walks the YAML node tree and collects problems, so that one pass
// reports every fault with its position instead of stopping at the first.
type decoder struct {
	file     string
	errs     []Problem
	warns    []Problem
	budget   int  // remaining YAML nodes the JSON conversion may visit
	overflow bool // budget exhausted (reported once)
}

func (d *decoder) problem(n *yaml.Node, path, format string, args []any) Problem {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, max(n.Column, 1)
	}
	if path == "" {
		path = documentPath
	}
	return Problem{File: d.file, Line: line, Column: col, Path: path, Message: fmt.Sprintf(format, args...)}
}

// maxProblems bounds the errors kept, so hostile input (an alias repeated
// thousands of times) cannot produce millions of problems.
const maxProblems = 500

// errorf records an error at node n.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	switch {
	case len(d.errs) < maxProblems:
		d.errs = append(d.errs, d.problem(n, path, format, args))
	case len(d.errs) == maxProblems:
		d.errs = append(d.errs, Problem{File: d.file, Line: 1, Column: 1, Path: documentPath,
			Message: fmt.Sprintf("too many problems; only the first %d are reported", maxProblems)})
	}
}

// warnf records a warning at node n.
func (d *decoder) warnf(n *yaml.Node, path, format string, args ...any) {
	d.warns = append(d.warns, d.problem(n, path, format, args))
}

// join and index build field paths like "steps[1].retry.max_attempts".
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// deref follows an alias to its anchored node, so aliases work everywhere.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	}
	v := n.Value
	if utf8.RuneCountInString(v) > 40 {
		v = string([]rune(v)[:40]) + "…"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!str":
		return fmt.Sprintf("string %q", v)
	case "!!int":
		return "integer " + v
	case "!!float":
		return "float " + v + " (quote it if you meant a string)"
	case "!!bool":
		return "boolean " + v
	case "!!timestamp":
		return "timestamp " + v + " (quote it if you meant a string)"
	default:
		return fmt.Sprintf("a value tagged %s", n.Tag)
	}
}

func (d *decoder) typeError(n *yaml.Node, path, want string) {
	d.errorf(n, path, "expected %s, got %s", want, describe(n))
}

// str decodes a string scalar; numbers and booleans are not silently
// converted, so `version: 1.0` is caught.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	r := deref(n)
	if r.Kind != yaml.ScalarNode || r.ShortTag() != "!!str" {
		d.typeError(n, path, "a string")
		return "", false
	}
	if strings.ContainsRune(r.Value, 0) {
		d.errorf(n, path, "contains a NUL character, which PostgreSQL text cannot store")
		return "", false
	}
	return r.Value, true
}

// integerDigits matches a plain decimal integer literal; notDecimal one
// that YAML reads in another base (010 is octal 8, 0x10 is 16) or, for 09,
// as a float.
var (
	integerDigits = regexp.MustCompile(`^[-+]?[1-9][0-9]*$`)
	notDecimal    = regexp.MustCompile(`^[-+]?0([0-9]|[xXoObB])`)
)

// integer decodes an integer scalar that fits an int.
func (d *decoder) integer(n *yaml.Node, path string) (int, bool) {
	r := deref(n)
	if r.Kind == yaml.ScalarNode && (r.ShortTag() == "!!int" || r.ShortTag() == "!!float") &&
		notDecimal.MatchString(r.Value) {
		d.errorf(n, path, "integer %s is not written in decimal (YAML reads a leading 0 as another base); write it without the leading 0", r.Value)
		return 0, false
	}
	if r.Kind == yaml.ScalarNode && r.ShortTag() == "!!float" && integerDigits.MatchString(r.Value) {
		// yaml.v3 resolves an integer too large for int64 as a float.
		d.errorf(n, path, "integer %s is out of range", r.Value)
		return 0, false
	}
	if r.Kind != yaml.ScalarNode || r.ShortTag() != "!!int" {
		d.typeError(n, path, "an integer")
		return 0, false
	}
	var v int64
	if err := r.Decode(&v); err != nil || v > math.MaxInt32 || v < math.MinInt32 {
		d.errorf(n, path, "integer %s is out of range", r.Value)
		return 0, false
	}
	return int(v), true
}

// boolean decodes true/false; yes/no/on/off are YAML 1.1 and rejected.
func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	r := deref(n)
	if r.Kind != yaml.ScalarNode || r.ShortTag() != "!!bool" {
		d.typeError(n, path, "a boolean (true or false)")
		return false, false
	}
	b, err := strconv.ParseBool(strings.ToLower(r.Value))
	if err != nil {
		d.errorf(n, path, "expected a boolean (true or false), got %s", describe(n))
		return false, false
	}
	return b, true
}

// list returns the items of a sequence; null counts as an empty list.
func (d *decoder) list(n *yaml.Node, path, want string) ([]*yaml.Node, bool) {
	if isNull(n) {
		return nil, true
	}
	r := deref(n)
	if r.Kind != yaml.SequenceNode {
		d.typeError(n, path, want)
		return nil, false
	}
	return r.Content, true
}

// stringList decodes a list of non-empty strings, keeping each valid
// item's node and its index in the list (for paths).
func (d *decoder) stringList(n *yaml.Node, path, want string) ([]string, []*yaml.Node, []int) {
	items, _ := d.list(n, path, want)
	var out []string
	var nodes []*yaml.Node
	var idx []int
	for i, it := range items {
		s, ok := d.str(it, index(path, i))
		if !ok {
			continue
		}
		if s == "" {
			d.errorf(it, index(path, i), "must not be empty")
			continue
		}
		out = append(out, s)
		nodes = append(nodes, it)
		idx = append(idx, i)
	}
	return out, nodes, idx
}

// runeLen counts characters, as PostgreSQL varchar limits do.
func runeLen(s string) int { return utf8.RuneCountInString(s) }
