package template

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// keySet describes the keys a mapping may hold: those stepevents reads,
// those of the original format it accepts but ignores (warnings), and
// rejected legacy keys with a hint (errors). Anything else is a typo.
type keySet struct {
	used   []string
	unused map[string]string // key → extra advice appended to the warning
	legacy map[string]string // key → hint appended to the error
}

var (
	topKeys = keySet{
		used: []string{"name", "namespace_name", "version", "description", "input_schema", "steps", "environments"},
		unused: map[string]string{
			"metadata":            "",
			"domain_events":       "; task-level events are never published, declare them under steps[].publishes_events",
			"lifecycle":           "",
			"system_dependencies": "",
		},
	}
	stepKeys = keySet{
		used: []string{"name", "description", "handler", "dependencies", "depends_on", "retry", "timeout_seconds", "publishes_events"},
		unused: map[string]string{
			"type":              "; every step runs as a standard step",
			"step_type":         "; every step runs as a standard step",
			"system_dependency": "",
			"batch_config":      "; batch steps are not supported",
			"result_schema":     "; use publishes_events[].schema to validate payloads",
		},
	}
	handlerKeys = keySet{
		used:   []string{"callable"},
		unused: map[string]string{"method": "", "resolver": "", "initialization": ""},
	}
	retryKeys = keySet{
		used: []string{"retryable", "max_attempts", "backoff", "backoff_base_ms", "max_backoff_ms"},
		legacy: map[string]string{
			"limit": "the legacy retry.limit is not supported (the original silently ignored it); use max_attempts, which counts every attempt including the first",
		},
	}
	eventKeys = keySet{
		used: []string{"name", "description", "condition", "delivery_mode", "publisher", "schema", "durable_redact"},
	}
	envKeys      = keySet{used: []string{"steps"}}
	overrideKeys = keySet{
		used:   []string{"name", "timeout_seconds", "retry"},
		unused: map[string]string{"handler": "; handlers take no initialization in stepevents"},
	}
)

// field is one key/value pair of a mapping.
type field struct{ key, val *yaml.Node }

// fields checks that n is a mapping, reports duplicate, unknown, legacy and
// ignored keys, and returns the pairs of the keys stepevents uses.
func (d *decoder) fields(n *yaml.Node, path, want string, ks *keySet) (map[string]field, bool) {
	r := deref(n)
	if r == nil || r.Kind != yaml.MappingNode {
		d.typeError(n, path, want)
		return nil, false
	}
	out := make(map[string]field, len(r.Content)/2)
	seen := make(map[string]*yaml.Node, len(r.Content)/2)
	for i := 0; i+1 < len(r.Content); i += 2 {
		k, v := deref(r.Content[i]), r.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be plain strings, got %s", describe(k))
			continue
		}
		key := k.Value
		kp := join(path, key)
		if k.ShortTag() == "!!merge" {
			d.errorf(k, kp, "YAML merge keys (<<) are not supported; repeat the keys or alias the whole value")
			continue
		}
		if first, dup := seen[key]; dup {
			d.errorf(k, kp, "duplicate key %q; first defined at line %d", key, first.Line)
			continue
		}
		seen[key] = k
		switch {
		case slices.Contains(ks.used, key):
			out[key] = field{key: k, val: v}
		case ks.unused != nil && hasKey(ks.unused, key):
			d.warnf(k, kp, "key %q is accepted for compatibility with the original format but ignored by stepevents%s", key, ks.unused[key])
		case ks.legacy != nil && hasKey(ks.legacy, key):
			d.errorf(k, kp, "unknown key %q: %s", key, ks.legacy[key])
		default:
			d.errorf(k, kp, "%s", unknownKey(key, ks))
		}
	}
	return out, true
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// unknownKey explains an unknown key: a suggestion when one key is close,
// otherwise the list of keys stepevents reads.
func unknownKey(key string, ks *keySet) string {
	cands := slices.Clone(ks.used)
	for k := range ks.unused {
		cands = append(cands, k)
	}
	slices.Sort(cands)
	if s := suggest(key, cands); s != "" {
		return fmt.Sprintf("unknown key %q; did you mean %q?", key, s)
	}
	return fmt.Sprintf("unknown key %q; allowed keys: %s", key, strings.Join(ks.used, ", "))
}

// suggest returns the candidate closest to s when it is close enough to be
// a likely typo (edit distance with transpositions, or equal once case and
// underscores are ignored), else "".
func suggest(s string, cands []string) string {
	norm := func(x string) string { return strings.ReplaceAll(strings.ToLower(x), "_", "") }
	limit := 1
	if len(s) >= 5 {
		limit = 2
	}
	best, bestD := "", limit+1
	for _, c := range cands {
		if norm(c) == norm(s) {
			return c
		}
		if dist := editDistance(s, c); dist < bestD && 2*dist < len(s) {
			best, bestD = c, dist
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance, so a swapped pair
// of letters ("nmae") costs one edit.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// present returns the value of key when it is set and not null, so optional
// keys written as `key:` (null) behave as if absent.
func present(m map[string]field, key string) (field, bool) {
	f, ok := m[key]
	if !ok || isNull(f.val) {
		return field{}, false
	}
	return f, true
}

// requiredString decodes a required non-empty string of at most maxLen
// characters. hint says what the value is, for the missing/empty message.
func (d *decoder) requiredString(m map[string]field, parent *yaml.Node, path, key, hint string, maxLen int) (string, *yaml.Node, bool) {
	kp := join(path, key)
	f, ok := m[key]
	if !ok {
		d.errorf(parent, kp, "missing required key %q: %s", key, hint)
		return "", nil, false
	}
	if isNull(f.val) {
		d.errorf(f.val, kp, "must not be empty: %s", hint)
		return "", f.val, false
	}
	s, ok := d.str(f.val, kp)
	if !ok {
		return "", f.val, false
	}
	if strings.TrimSpace(s) == "" {
		d.errorf(f.val, kp, "must not be empty: %s", hint)
		return "", f.val, false
	}
	if n := runeLen(s); n > maxLen {
		d.errorf(f.val, kp, "is %d characters long; at most %d are allowed", n, maxLen)
		return "", f.val, false
	}
	return s, f.val, true
}

// optionalString decodes an optional string of at most maxLen characters.
func (d *decoder) optionalString(m map[string]field, path, key string, maxLen int) string {
	f, ok := present(m, key)
	if !ok {
		return ""
	}
	kp := join(path, key)
	s, ok := d.str(f.val, kp)
	if !ok {
		return ""
	}
	if n := runeLen(s); n > maxLen {
		d.errorf(f.val, kp, "is %d characters long; at most %d are allowed", n, maxLen)
		return ""
	}
	return s
}
