package template

import (
	"math"

	"gopkg.in/yaml.v3"
)

// stepInfo keeps the YAML nodes of a step for the cross-step checks, which
// need positions after every step has been decoded.
type stepInfo struct {
	path     string
	node     *yaml.Node
	name     string // "" when missing or invalid
	nameNode *yaml.Node
	depsPath string // path of the dependency list ("…dependencies" or "…depends_on")
	depNodes []*yaml.Node
	depIdx   []int // index of each depNodes entry in the written list
	retry    retryPatch
}

// parseTemplate decodes the root mapping into t and returns the per-step
// nodes. Every problem is recorded; decoding continues past faults.
func (d *decoder) parseTemplate(root *yaml.Node, t *Template) ([]stepInfo, map[string]field) {
	m, ok := d.fields(root, "", "a mapping (the task template)", &topKeys)
	if !ok {
		return nil, nil
	}
	t.Name, _, _ = d.requiredString(m, root, "", "name", "the task template's name (1-255 characters)", MaxNameLen)
	if ns, n, ok := d.requiredString(m, root, "", "namespace_name",
		"lower-case namespace matching ^[a-z][a-z0-9_]*$, at most 29 characters", math.MaxInt); ok {
		if err := ValidNamespace(ns); err != nil {
			d.errorf(n, "namespace_name", "%v", err)
		} else {
			t.Namespace = ns
		}
	}
	if v, n, ok := d.requiredString(m, root, "", "version", "semantic version MAJOR.MINOR.PATCH, e.g. \"1.0.0\"", MaxVersionLen); ok {
		if err := ValidVersion(v); err != nil {
			d.errorf(n, "version", "%v", err)
		} else {
			t.Version = v
		}
	}
	t.Description = d.optionalString(m, "", "description", math.MaxInt)
	if f, ok := present(m, "input_schema"); ok {
		t.InputSchema, t.CompiledInputSchema = d.schema(f.val, "input_schema")
	}

	f, ok := m["steps"]
	if !ok {
		d.errorf(root, "steps", "missing required key \"steps\": a non-empty list of steps")
		return nil, m
	}
	items, ok := d.list(f.val, "steps", "a list of steps")
	if ok && len(items) == 0 {
		d.errorf(f.val, "steps", "must list at least one step")
	}
	infos := make([]stepInfo, len(items))
	t.Steps = make([]Step, len(items))
	for i, it := range items {
		infos[i] = d.parseStep(it, index("steps", i), &t.Steps[i])
	}
	return infos, m
}

// parseStep decodes one step into s.
func (d *decoder) parseStep(n *yaml.Node, path string, s *Step) stepInfo {
	info := stepInfo{path: path, node: n}
	s.Retry = DefaultRetry()
	m, ok := d.fields(n, path, "a mapping (a step)", &stepKeys)
	if !ok {
		return info
	}
	if name, nn, ok := d.requiredString(m, n, path, "name", "the step's name, unique within the template", MaxNameLen); ok {
		s.Name, info.name, info.nameNode = name, name, nn
	}
	s.Description = d.optionalString(m, path, "description", math.MaxInt)
	s.Handler = d.parseHandler(m, n, path)

	depKey := "dependencies"
	if f, ok := m["depends_on"]; ok {
		if _, both := m["dependencies"]; both {
			d.errorf(f.key, join(path, "depends_on"), "use either \"dependencies\" or \"depends_on\" (an alias), not both")
		} else {
			depKey = "depends_on"
		}
	}
	if f, ok := m[depKey]; ok {
		info.depsPath = join(path, depKey)
		s.Dependencies, info.depNodes, info.depIdx = d.stringList(f.val, info.depsPath, "a list of step names")
	}

	f := m["retry"]
	info.retry = d.parseRetry(f.val, join(path, "retry"))
	s.Retry = s.Retry.apply(info.retry)
	if info.retry.node != nil {
		d.checkDelays(s.Retry, info.retry)
	}
	if t, ok := d.timeout(m, path); ok {
		s.TimeoutSeconds = t
	}

	if f, ok := m["publishes_events"]; ok {
		ep := join(path, "publishes_events")
		items, _ := d.list(f.val, ep, "a list of event declarations")
		first := map[string]*yaml.Node{}
		for i, it := range items {
			ev, nameNode := d.parseEvent(it, index(ep, i))
			if ev.Name != "" {
				if prev, dup := first[ev.Name]; dup {
					d.errorf(nameNode, join(index(ep, i), "name"), "duplicate event %q in this step; first declared at line %d", ev.Name, prev.Line)
					continue
				}
				first[ev.Name] = nameNode
			}
			s.Events = append(s.Events, ev)
		}
	}
	return info
}

// parseHandler decodes the required handler block and returns its callable.
func (d *decoder) parseHandler(m map[string]field, step *yaml.Node, path string) string {
	hp := join(path, "handler")
	f, ok := m["handler"]
	if !ok {
		d.errorf(step, hp, "missing required key \"handler\": a mapping whose \"callable\" names the code that runs this step")
		return ""
	}
	hm, ok := d.fields(f.val, hp, "a mapping with key \"callable\"", &handlerKeys)
	if !ok {
		return ""
	}
	c, _, _ := d.requiredString(hm, f.val, hp, "callable", "the name the step's handler is registered under", MaxCallableLen)
	return c
}

// timeout decodes the optional timeout_seconds (0 = no timeout).
func (d *decoder) timeout(m map[string]field, path string) (int, bool) {
	f, ok := present(m, "timeout_seconds")
	if !ok {
		return 0, false
	}
	kp := join(path, "timeout_seconds")
	v, ok := d.integer(f.val, kp)
	if !ok {
		return 0, false
	}
	if v < 0 {
		d.errorf(f.val, kp, "timeout_seconds is %d; allowed range is 0 to %d (0 means no timeout)", v, math.MaxInt32)
		return 0, false
	}
	return v, true
}

// parseEvent decodes one publishes_events entry; it returns the name node
// for duplicate detection.
func (d *decoder) parseEvent(n *yaml.Node, path string) (EventDeclaration, *yaml.Node) {
	ev := EventDeclaration{Condition: ConditionSuccess, DeliveryMode: DeliveryDurable}
	m, ok := d.fields(n, path, "a mapping (an event declaration)", &eventKeys)
	if !ok {
		return ev, nil
	}
	name, nameNode, ok := d.requiredString(m, n, path, "name", "a dotted event name such as \"payment.processed\"", math.MaxInt)
	if ok {
		if err := ValidEventName(name); err != nil {
			d.errorf(nameNode, join(path, "name"), "%v", err)
		} else {
			ev.Name = name
		}
	}
	ev.Description, _, _ = d.requiredString(m, n, path, "description", "say what the event means to its consumers", math.MaxInt)
	if s, fn, ok := d.enum(m, path, "condition"); ok {
		if c := Condition(s); c.Valid() {
			ev.Condition = c
		} else {
			d.errorf(fn, join(path, "condition"), "unknown condition %q; allowed: success (default), failure, retryable_failure, permanent_failure, always", s)
		}
	}
	if s, fn, ok := d.enum(m, path, "delivery_mode"); ok {
		if dm := DeliveryMode(s); dm.Valid() {
			ev.DeliveryMode = dm
		} else {
			d.errorf(fn, join(path, "delivery_mode"), "unknown delivery_mode %q; allowed: durable (default), fast, broadcast", s)
		}
	}
	if f, ok := m["publisher"]; ok {
		kp := join(path, "publisher")
		s := ""
		if !isNull(f.val) {
			s, ok = d.str(f.val, kp)
		}
		if ok {
			if err := ValidPublisher(s); err != nil {
				d.errorf(f.val, kp, "%v", err)
			} else {
				ev.Publisher = s
			}
		}
	}
	if f, ok := present(m, "schema"); ok {
		ev.Schema, ev.CompiledSchema = d.schema(f.val, join(path, "schema"))
	}
	if f, ok := m["durable_redact"]; ok {
		ev.DurableRedact = d.redactions(f.val, join(path, "durable_redact"))
		if len(ev.DurableRedact) > 0 && ev.DeliveryMode == DeliveryFast {
			d.warnf(f.key, join(path, "durable_redact"), "durable_redact has no effect: delivery_mode \"fast\" writes no durable copy")
		}
	}
	return ev, nameNode
}

// enum decodes an optional string key, returning its value node.
func (d *decoder) enum(m map[string]field, path, key string) (string, *yaml.Node, bool) {
	f, ok := present(m, key)
	if !ok {
		return "", nil, false
	}
	s, ok := d.str(f.val, join(path, key))
	return s, f.val, ok
}

// redactions decodes durable_redact: distinct valid JSON pointers.
func (d *decoder) redactions(n *yaml.Node, path string) []string {
	items, _ := d.list(n, path, "a list of JSON pointers")
	var out []string
	seen := map[string]int{}
	for i, it := range items {
		ip := index(path, i)
		p, ok := d.str(it, ip)
		if !ok {
			continue
		}
		if err := ValidRedactPointer(p); err != nil {
			d.errorf(it, ip, "%v", err)
			continue
		}
		if line, dup := seen[p]; dup {
			d.errorf(it, ip, "duplicate durable_redact entry %q; first listed at line %d", p, line)
			continue
		}
		seen[p] = it.Line
		out = append(out, p)
	}
	return out
}
