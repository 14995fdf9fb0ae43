package template

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds the input Load accepts; templates are small, and the
// bound keeps hostile input from costing much.
const MaxFileSize = 8 << 20

// Option configures Load.
type Option func(*options)

type options struct {
	env string
}

// LoadFile reads and loads the template at path; path becomes the file name
// in every Problem.
func LoadFile(path string, opts ...Option) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return Load(path, data, opts...)
}

// Load parses and validates a template. file names the source in problems.
// On any error it returns nil and an *Error holding every problem found, in
// file order; warnings are then dropped (fix the errors first).
func Load(file string, data []byte, opts ...Option) (*Template, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	d := &decoder{file: file, budget: maxJSONNodes}
	t := &Template{Source: file}
	root := d.parseYAML(data)
	if root != nil {
		d.load(root, t, o)
	}
	if len(d.errs) > 0 {
		sortProblems(d.errs)
		return nil, &Error{Problems: d.errs}
	}
	sortProblems(d.warns)
	t.Warnings = d.warns
	return t, nil
}

// load decodes and checks root, then builds the definition.
func (d *decoder) load(root *yaml.Node, t *Template, o options) {
	infos, top := d.parseTemplate(root, t)
	d.checkSteps(infos)
	var ovs []override
	if f, ok := top["environments"]; ok {
		var found bool
		if ovs, found = d.parseEnvironments(f, t, infos, o.env); found {
			t.Environment = o.env
		}
	}
	if len(d.errs) > 0 {
		return
	}
	v, ok := d.toJSON(root, "")
	if !ok {
		return
	}
	def, _ := v.(map[string]any)
	applyOverrides(t, def, ovs)
	raw, err := marshalJSON(def)
	if err != nil {
		d.errorf(root, "", "cannot encode the template as JSON: %v", err)
		return
	}
	t.Definition = raw
}

// parseYAML parses exactly one YAML document and returns its root node, or
// records why it cannot.
func (d *decoder) parseYAML(data []byte) *yaml.Node {
	if len(data) > MaxFileSize {
		d.errorf(nil, "", "file is %d bytes; templates are limited to %d bytes", len(data), MaxFileSize)
		return nil
	}
	if !d.validUTF8(data) {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorf(nil, "", "empty document: a task template needs name, namespace_name, version and steps")
		} else {
			d.syntaxError(data, err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		at := &extra
		if len(extra.Content) > 0 {
			at = extra.Content[0]
		}
		d.errorf(at, "", "the file holds more than one YAML document; a template must be a single document")
		return nil
	case !errors.Is(err, io.EOF):
		d.syntaxError(data, err)
		return nil
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		d.errorf(&doc, "", "empty document: a task template needs name, namespace_name, version and steps")
		return nil
	}
	return doc.Content[0]
}
