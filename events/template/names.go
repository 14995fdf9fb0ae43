package template

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Length limits, in characters, matching the original's column sizes.
const (
	// MaxNamespaceLen keeps "{namespace}_domain_events_dlq" within pgmq's
	// 47-character queue names (47 - len("_domain_events_dlq")).
	MaxNamespaceLen = 29
	// MaxEventNameLen bounds event names (stored and matched by subscribers).
	MaxEventNameLen = 255
	// MaxNameLen bounds template and step names.
	MaxNameLen = 255
	// MaxCallableLen bounds handler.callable.
	MaxCallableLen = 500
	// MaxVersionLen bounds the version string.
	MaxVersionLen = 50
)

var (
	namespaceRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	publisherRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*((::|\.)[a-zA-Z_][a-zA-Z0-9_]*)*$`)
	versionRE   = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)
)

// ValidNamespace checks a namespace_name. Namespaces become pgmq queue names,
// which pgmq lower-cases into table names, so only lower case is accepted
// (otherwise "Payments" and "payments" would share tables).
func ValidNamespace(ns string) error {
	switch {
	case ns == "":
		return fmt.Errorf("namespace must not be empty: use lower-case letters, digits and _, starting with a letter")
	case len(ns) > MaxNamespaceLen:
		return fmt.Errorf("namespace %q is %d characters long; at most %d are allowed so that %q fits pgmq's 47-character queue names",
			ns, len(ns), MaxNamespaceLen, ns+"_domain_events_dlq")
	case namespaceRE.MatchString(ns):
		return nil
	case strings.ToLower(ns) != ns && namespaceRE.MatchString(strings.ToLower(ns)):
		return fmt.Errorf("namespace %q must be lower case (pgmq folds queue names to lower case, so %q and %q would collide); use %q",
			ns, ns, strings.ToLower(ns), strings.ToLower(ns))
	default:
		return fmt.Errorf("namespace %q must match ^[a-z][a-z0-9_]*$: a lower-case letter, then lower-case letters, digits and _", ns)
	}
}

// ValidEventName checks a published event name: lower-case [a-z0-9_]
// segments separated by dots, at least two segments. Wildcards belong only
// in subscription patterns, so they are rejected here; the subscriber side
// uses this to validate the literal parts of its patterns too.
func ValidEventName(name string) error {
	if name == "" {
		return fmt.Errorf("event name must not be empty: use dot-separated lower-case segments, e.g. \"payment.processed\"")
	}
	if len(name) > MaxEventNameLen {
		return fmt.Errorf("event name is %d characters long; at most %d are allowed", len(name), MaxEventNameLen)
	}
	if strings.ContainsAny(name, "*>") {
		return fmt.Errorf("event name %q contains a wildcard; * and > are only allowed in subscription patterns, not in published names", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.') {
			return fmt.Errorf("event name %q contains %q; segments may only use lower-case letters, digits and _, separated by dots", name, r)
		}
	}
	segments := strings.Split(name, ".")
	for _, s := range segments {
		if s == "" {
			return fmt.Errorf("event name %q has an empty segment (leading, trailing or doubled dot)", name)
		}
	}
	if len(segments) < 2 {
		return fmt.Errorf("event name %q needs at least two dot-separated segments (domain.action), e.g. \"order.validated\"", name)
	}
	return nil
}

// ValidPublisher checks a publisher name: identifiers separated by "::" or
// ".", as the original accepted, so Ruby- and Go-style names both work.
func ValidPublisher(name string) error {
	if name == "" {
		return fmt.Errorf("publisher must not be empty; omit the key to use the default publisher")
	}
	if !publisherRE.MatchString(name) {
		return fmt.Errorf("publisher %q is not a valid name: use identifiers ([A-Za-z_][A-Za-z0-9_]*) separated by \"::\" or \".\", e.g. \"PaymentEventPublisher\"", name)
	}
	return nil
}

// ValidVersion checks a template version is semver MAJOR.MINOR.PATCH; the
// original meant to check this but its check never fired.
func ValidVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("version %q is not MAJOR.MINOR.PATCH (digits only, no leading zeros), e.g. \"1.0.0\"", v)
	}
	// Parts stay within PostgreSQL's integer: a database not yet migrated
	// to 00021 orders versions by casting them to it.
	for _, part := range strings.Split(v, ".") {
		if n, err := strconv.ParseInt(part, 10, 64); err != nil || n > math.MaxInt32 {
			return fmt.Errorf("version %q has a part larger than %d", v, math.MaxInt32)
		}
	}
	return nil
}

// ValidRedactPointer checks a durable_redact entry: an RFC 6901 JSON pointer
// that selects something inside the payload. The empty pointer (the whole
// payload) is rejected: an event that must stay off the durable queue should
// use delivery_mode fast instead.
func ValidRedactPointer(p string) error {
	if p == "" || p[0] != '/' {
		return fmt.Errorf("durable_redact entry %q is not a JSON pointer: it must start with \"/\", e.g. \"/card/number\"", p)
	}
	if p == "/" {
		return fmt.Errorf("durable_redact entry \"/\" names the key \"\" (empty string), not the whole payload; to keep an event off the durable queue use delivery_mode: fast")
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return fmt.Errorf("durable_redact entry %q has an invalid escape: \"~\" must be followed by 0 or 1 (RFC 6901: ~0 is \"~\", ~1 is \"/\")", p)
		}
	}
	return nil
}
