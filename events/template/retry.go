package template

import "gopkg.in/yaml.v3"

// Retry ranges, as in the original; Load rejects values outside them.
const (
	// MinMaxAttempts and MaxMaxAttempts bound max_attempts (which counts the first run).
	MinMaxAttempts = 1
	MaxMaxAttempts = 100
	// MinBackoffBaseMS and MaxBackoffBaseMS bound backoff_base_ms.
	MinBackoffBaseMS = 100
	MaxBackoffBaseMS = 3_600_000
	// MinMaxBackoffMS and MaxMaxBackoffMS bound max_backoff_ms.
	MinMaxBackoffMS = 1000
	MaxMaxBackoffMS = 3_600_000
)

// retryPatch holds the keys a retry block sets explicitly. Keeping "set"
// apart from "defaulted" is what lets an environment override merge key by
// key. Out-of-range values are reported and left unset.
type retryPatch struct {
	node              *yaml.Node // the retry mapping; nil when absent
	path              string
	retryable         *bool
	maxAttempts       *int
	backoff           *Backoff
	baseMS, maxMS     *int
	baseNode, maxNode *yaml.Node
}

// parseRetry decodes a retry block (n may be nil or null: nothing set).
func (d *decoder) parseRetry(n *yaml.Node, path string) retryPatch {
	p := retryPatch{path: path}
	if isNull(n) {
		return p
	}
	m, ok := d.fields(n, path, "a mapping (retry policy)", &retryKeys)
	if !ok {
		return p
	}
	p.node = n
	if f, ok := present(m, "retryable"); ok {
		if b, ok := d.boolean(f.val, join(path, "retryable")); ok {
			p.retryable = &b
		}
	}
	p.maxAttempts, _ = d.rangedInt(m, path, "max_attempts", MinMaxAttempts, MaxMaxAttempts, " (attempts include the first run)")
	p.baseMS, p.baseNode = d.rangedInt(m, path, "backoff_base_ms", MinBackoffBaseMS, MaxBackoffBaseMS, "")
	p.maxMS, p.maxNode = d.rangedInt(m, path, "max_backoff_ms", MinMaxBackoffMS, MaxMaxBackoffMS, "")
	if f, ok := present(m, "backoff"); ok {
		kp := join(path, "backoff")
		if s, ok := d.str(f.val, kp); ok {
			if b := Backoff(s); b.Valid() {
				p.backoff = &b
			} else {
				d.errorf(f.val, kp, "unknown backoff %q; allowed: none, linear, exponential (default)", s)
			}
		}
	}
	return p
}

// rangedInt decodes an optional integer and checks lo <= v <= hi.
func (d *decoder) rangedInt(m map[string]field, path, key string, lo, hi int, note string) (*int, *yaml.Node) {
	f, ok := present(m, key)
	if !ok {
		return nil, nil
	}
	kp := join(path, key)
	v, ok := d.integer(f.val, kp)
	if !ok {
		return nil, nil
	}
	if v < lo || v > hi {
		d.errorf(f.val, kp, "%s is %d; allowed range is %d to %d%s", key, v, lo, hi, note)
		return nil, nil
	}
	return &v, f.val
}

// apply returns r with the keys p sets replaced.
func (r Retry) apply(p retryPatch) Retry {
	if p.retryable != nil {
		r.Retryable = *p.retryable
	}
	if p.maxAttempts != nil {
		r.MaxAttempts = *p.maxAttempts
	}
	if p.backoff != nil {
		r.Backoff = *p.backoff
	}
	if p.baseMS != nil {
		r.BackoffBaseMS = *p.baseMS
	}
	if p.maxMS != nil {
		r.MaxBackoffMS = *p.maxMS
	}
	return r
}

// setsDelays reports whether p sets either delay bound.
func (p retryPatch) setsDelays() bool { return p.baseMS != nil || p.maxMS != nil }

// checkDelays reports a resolved policy whose cap is below its base delay,
// at the key that p set (the cap preferred).
func (d *decoder) checkDelays(r Retry, p retryPatch) {
	if r.MaxBackoffMS >= r.BackoffBaseMS {
		return
	}
	n := p.node
	switch {
	case p.maxNode != nil:
		n = p.maxNode
	case p.baseNode != nil:
		n = p.baseNode
	}
	d.errorf(n, join(p.path, "max_backoff_ms"), "max_backoff_ms (%d) must be >= backoff_base_ms (%d)", r.MaxBackoffMS, r.BackoffBaseMS)
}
