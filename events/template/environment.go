package template

import (
	"encoding/json"
	"strconv"

	"gopkg.in/yaml.v3"
)

// override is one environments.<env>.steps[] entry, decoded and resolved to
// the step it targets.
type override struct {
	step    int // index into Template.Steps
	timeout *int
	retry   retryPatch
}

// WithEnvironment selects the environment whose overrides Load applies. See
// the package documentation for the merge semantics; an environment the
// template does not mention applies nothing.
func WithEnvironment(env string) Option {
	return func(o *options) { o.env = env }
}

// parseEnvironments validates every environment (selected or not) and
// returns the overrides of the selected one. Retry overrides are checked
// merged over the base step's resolved policy, as they would run.
func (d *decoder) parseEnvironments(f field, t *Template, infos []stepInfo, selected string) ([]override, bool) {
	if isNull(f.val) {
		return nil, false
	}
	m := deref(f.val)
	if m.Kind != yaml.MappingNode {
		d.typeError(f.val, "environments", "a mapping of environment name to overrides")
		return nil, false
	}
	byName := map[string]int{}
	for i, in := range infos {
		if _, dup := byName[in.name]; in.name != "" && !dup {
			byName[in.name] = i
		}
	}
	var chosen []override
	found := false
	firstLine := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), m.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			d.errorf(k, "environments", "environment names must be plain strings, got %s", describe(k))
			continue
		}
		env := k.Value
		if line, dup := firstLine[env]; dup {
			d.errorf(k, join("environments", env), "duplicate key %q; first defined at line %d", env, line)
			continue
		}
		firstLine[env] = k.Line
		ovs := d.parseEnvironment(v, join("environments", env), env, t, infos, byName)
		if env == selected {
			chosen, found = ovs, true
		}
	}
	return chosen, found
}

// parseEnvironment decodes one environment's overrides.
func (d *decoder) parseEnvironment(n *yaml.Node, path, env string, t *Template, infos []stepInfo, byName map[string]int) []override {
	if isNull(n) {
		return nil
	}
	em, ok := d.fields(n, path, "a mapping with key \"steps\"", &envKeys)
	if !ok {
		return nil
	}
	f, ok := em["steps"]
	if !ok {
		return nil
	}
	sp := join(path, "steps")
	items, _ := d.list(f.val, sp, "a list of step overrides")
	var out []override
	seen := map[string]int{}
	for i, it := range items {
		ip := index(sp, i)
		om, ok := d.fields(it, ip, "a mapping (a step override)", &overrideKeys)
		if !ok {
			continue
		}
		name, nameNode, ok := d.requiredString(om, it, ip, "name", "the name of the step to override", MaxNameLen)
		// Decode the values even when the name is bad, to report their faults too.
		ov := override{step: -1}
		if secs, ok := d.timeout(om, ip); ok {
			ov.timeout = &secs
		}
		rf := om["retry"]
		ov.retry = d.parseRetry(rf.val, join(ip, "retry"))
		if !ok {
			continue
		}
		idx, known := byName[name]
		if !known {
			d.errorf(nameNode, join(ip, "name"), "environment %q overrides unknown step %q%s", env, name, stepChoices(name, infos))
			continue
		}
		if line, dup := seen[name]; dup {
			d.errorf(nameNode, join(ip, "name"), "step %q is already overridden in environment %q at line %d", name, env, line)
			continue
		}
		seen[name] = nameNode.Line
		ov.step = idx
		if ov.retry.setsDelays() {
			d.checkDelays(t.Steps[idx].Retry.apply(ov.retry), ov.retry)
		}
		out = append(out, ov)
	}
	return out
}

// applyOverrides changes the steps and the stored definition (a JSON value
// tree) the same way, so Definition describes what will run.
func applyOverrides(t *Template, def map[string]any, ovs []override) {
	steps, _ := def["steps"].([]any)
	for _, ov := range ovs {
		s := &t.Steps[ov.step]
		var stepDef map[string]any
		if ov.step < len(steps) {
			stepDef, _ = steps[ov.step].(map[string]any)
		}
		if stepDef == nil {
			stepDef = map[string]any{} // not reachable for valid templates
		}
		if ov.timeout != nil {
			s.TimeoutSeconds = *ov.timeout
			stepDef["timeout_seconds"] = json.Number(strconv.Itoa(*ov.timeout))
		}
		s.Retry = s.Retry.apply(ov.retry)
		if ov.retry.node == nil {
			continue
		}
		retryDef, _ := stepDef["retry"].(map[string]any)
		if retryDef == nil {
			retryDef = map[string]any{}
			stepDef["retry"] = retryDef
		}
		p := ov.retry
		if p.retryable != nil {
			retryDef["retryable"] = *p.retryable
		}
		if p.maxAttempts != nil {
			retryDef["max_attempts"] = json.Number(strconv.Itoa(*p.maxAttempts))
		}
		if p.backoff != nil {
			retryDef["backoff"] = string(*p.backoff)
		}
		if p.baseMS != nil {
			retryDef["backoff_base_ms"] = json.Number(strconv.Itoa(*p.baseMS))
		}
		if p.maxMS != nil {
			retryDef["max_backoff_ms"] = json.Number(strconv.Itoa(*p.maxMS))
		}
	}
}
