package events

import (
	"fmt"
	"strings"

	"github.com/stepevents/stepevents/events/template"
)

// Pattern is a validated subscription pattern. Event names are dot-separated
// lower-case segments ("payment.failed.retryable"); a pattern is either the
// lone "*", which matches every event (as in every implementation of the
// original system), or segments where
//
//   - a literal segment ([a-z0-9_]+) matches itself,
//   - "*" matches exactly one segment: "payment.*" matches
//     "payment.processed" but neither "payment" nor "payment.failed.retryable",
//   - a final ">" matches one or more segments: "payment.>" matches
//     "payment.processed" and "payment.failed.retryable" but not "payment".
//
// This is NATS' convention, except for the lone "*". A wildcard always fills
// a whole segment ("pay*" is rejected) and matching is case-sensitive; since
// published names are lower case, upper-case patterns are rejected rather
// than left to match nothing.
type Pattern struct {
	raw  string
	segs []string // literal segments, or "*"
	tail bool     // the pattern ended with ">"
	all  bool     // the lone "*"
}

// ParsePattern validates s. The error names the pattern and says what is
// wrong with it, and wraps ErrInvalidInput.
func ParsePattern(s string) (Pattern, error) {
	if s == "*" {
		return Pattern{raw: s, all: true}, nil
	}
	if s == "" {
		return Pattern{}, fmt.Errorf("invalid subscription pattern \"\": it is empty; use \"*\" for every event or a name such as \"payment.*\": %w", ErrInvalidInput)
	}
	if len(s) > template.MaxEventNameLen {
		return Pattern{}, fmt.Errorf("invalid subscription pattern %q: it is %d characters long; at most %d are allowed: %w",
			s[:32]+"…", len(s), template.MaxEventNameLen, ErrInvalidInput)
	}
	parts := strings.Split(s, ".")
	p := Pattern{raw: s}
	for i, seg := range parts {
		last := i == len(parts)-1
		switch {
		case seg == "":
			return Pattern{}, fmt.Errorf("invalid subscription pattern %q: segment %d is empty (leading, trailing or doubled dot): %w",
				s, i+1, ErrInvalidInput)
		case seg == ">" && !last:
			return Pattern{}, fmt.Errorf("invalid subscription pattern %q: \">\" must be the last segment (it matches all the remaining segments): %w",
				s, ErrInvalidInput)
		case seg == ">":
			p.tail = true
		case seg == "*":
			p.segs = append(p.segs, seg)
		case strings.Trim(seg, "*>") == "":
			return Pattern{}, fmt.Errorf("invalid subscription pattern %q: segment %q repeats wildcards; use one \"*\" for exactly one segment or a final \">\" for one or more: %w",
				s, seg, ErrInvalidInput)
		case strings.ContainsAny(seg, "*>"):
			return Pattern{}, fmt.Errorf("invalid subscription pattern %q: segment %q mixes a wildcard with other characters; a wildcard must be a whole segment, e.g. \"payment.*\" or \"payment.>\": %w",
				s, seg, ErrInvalidInput)
		default:
			if err := checkLiteralSegment(s, seg); err != nil {
				return Pattern{}, err
			}
			p.segs = append(p.segs, seg)
		}
	}
	return p, nil
}

func checkLiteralSegment(pattern, seg string) error {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		case c >= 'A' && c <= 'Z':
			return fmt.Errorf("invalid subscription pattern %q: segment %q has upper case; event names are lower case, so use %q: %w",
				pattern, seg, strings.ToLower(pattern), ErrInvalidInput)
		default:
			return fmt.Errorf("invalid subscription pattern %q: segment %q contains %q; literal segments may only use a-z, 0-9 and _: %w",
				pattern, seg, rune(c), ErrInvalidInput)
		}
	}
	return nil
}

// MustParsePattern is ParsePattern for patterns known at compile time; it
// panics on an invalid one.
func MustParsePattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether eventName matches p. It never allocates and never
// panics. Apart from the lone "*", which matches anything, names with an
// empty segment match nothing. The zero Pattern matches nothing.
func (p Pattern) Match(eventName string) bool {
	if p.all {
		return true
	}
	if (len(p.segs) == 0 && !p.tail) || !wellFormedName(eventName) {
		return false
	}
	pos := 0
	for _, want := range p.segs {
		if pos > len(eventName) {
			return false
		}
		seg, next := nextSegment(eventName, pos)
		if want != "*" && want != seg {
			return false
		}
		pos = next
	}
	if p.tail {
		return pos <= len(eventName)
	}
	return pos > len(eventName)
}

// nextSegment returns the segment starting at pos and the start of the
// following one, which is len(name)+1 when the segment was the last.
func nextSegment(name string, pos int) (string, int) {
	if i := strings.IndexByte(name[pos:], '.'); i >= 0 {
		return name[pos : pos+i], pos + i + 1
	}
	return name[pos:], len(name) + 1
}

// wellFormedName reports whether name is non-empty with no empty segment.
func wellFormedName(name string) bool {
	return name != "" && name[0] != '.' && name[len(name)-1] != '.' && !strings.Contains(name, "..")
}

// patternIndex finds the subscriptions whose pattern matches an event name,
// at a cost that depends on the name's segments, not on the number of
// subscriptions: exact names are one map lookup, wildcard patterns live in a
// trie walked segment by segment. It is immutable: the bus builds a new one
// on every Subscribe and unsubscribe and swaps it in atomically, so Publish
// reads it without locks.
type patternIndex struct {
	gap   []*subscription            // subscriptions with a gap handler
	all   []*subscription            // the lone "*"
	exact map[string][]*subscription // patterns without wildcards
	trie  *trieNode                  // patterns with "*" or ">"; nil when none
}

type trieNode struct {
	literal map[string]*trieNode
	star    *trieNode
	end     []*subscription // patterns that end at this node
	tail    []*subscription // patterns ending in ">" right after this node
}

func newPatternIndex(subs []*subscription) *patternIndex {
	ix := &patternIndex{exact: map[string][]*subscription{}}
	for _, s := range subs {
		if s.onGap != nil {
			ix.gap = append(ix.gap, s)
		}
		p := s.pattern
		switch {
		case s.gapOnly:
		case p.all:
			ix.all = append(ix.all, s)
		case !p.tail && !containsStar(p.segs):
			ix.exact[p.raw] = append(ix.exact[p.raw], s)
		default:
			if ix.trie == nil {
				ix.trie = &trieNode{}
			}
			n := ix.trie
			for _, seg := range p.segs {
				n = n.child(seg)
			}
			if p.tail {
				n.tail = append(n.tail, s)
			} else {
				n.end = append(n.end, s)
			}
		}
	}
	return ix
}

func containsStar(segs []string) bool {
	for _, s := range segs {
		if s == "*" {
			return true
		}
	}
	return false
}

func (n *trieNode) child(seg string) *trieNode {
	if seg == "*" {
		if n.star == nil {
			n.star = &trieNode{}
		}
		return n.star
	}
	if n.literal == nil {
		n.literal = map[string]*trieNode{}
	}
	c := n.literal[seg]
	if c == nil {
		c = &trieNode{}
		n.literal[seg] = c
	}
	return c
}

// forEachMatch calls fn with every subscription matching name. It does not
// allocate (fn does not escape).
func (ix *patternIndex) forEachMatch(name string, fn func(*subscription)) {
	for _, s := range ix.all {
		fn(s)
	}
	if !wellFormedName(name) {
		return
	}
	for _, s := range ix.exact[name] {
		fn(s)
	}
	if ix.trie != nil {
		ix.trie.walk(name, 0, fn)
	}
}

// walk matches the segments of name from pos (len(name)+1 once all are
// consumed) against the patterns below n.
func (n *trieNode) walk(name string, pos int, fn func(*subscription)) {
	if pos > len(name) {
		for _, s := range n.end {
			fn(s)
		}
		return
	}
	for _, s := range n.tail {
		fn(s)
	}
	seg, next := nextSegment(name, pos)
	if c := n.literal[seg]; c != nil {
		c.walk(name, next, fn)
	}
	if n.star != nil {
		n.star.walk(name, next, fn)
	}
}
