package events

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// benchPatterns returns n patterns mixing exact names and wildcards over n/4
// domains, the shape a large deployment would have.
func benchPatterns(n int) []string {
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		d := fmt.Sprintf("domain%d", i)
		for _, p := range []string{d + ".created", d + ".*", d + ".>", "*.action" + fmt.Sprint(i)} {
			if len(out) < n {
				out = append(out, p)
			}
		}
	}
	return out
}

func indexOf(t testing.TB, patterns []string) (*patternIndex, []*subscription) {
	subs := make([]*subscription, len(patterns))
	for i, p := range patterns {
		pat, err := ParsePattern(p)
		require.NoError(t, err)
		subs[i] = &subscription{id: uint64(i), pattern: pat}
	}
	return newPatternIndex(subs), subs
}

// TestPatternIndexAgreesWithMatch checks the index returns exactly the
// subscriptions whose Pattern.Match is true, on random patterns and names.
func TestPatternIndexAgreesWithMatch(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "b", "payment", "failed", "*", ">"}
	randName := func() string {
		n := 1 + rng.IntN(4)
		s := ""
		for i := range n {
			if i > 0 {
				s += "."
			}
			s += words[rng.IntN(4)]
		}
		return s
	}
	var patterns []string
	for range 300 {
		n := 1 + rng.IntN(4)
		s := ""
		for i := range n {
			if i > 0 {
				s += "."
			}
			w := words[rng.IntN(len(words))]
			if w == ">" && i < n-1 {
				w = "*"
			}
			s += w
		}
		patterns = append(patterns, s)
	}
	patterns = append(patterns, "*")
	ix, subs := indexOf(t, patterns)
	for range 2000 {
		name := randName()
		var want []uint64
		for _, s := range subs {
			if s.pattern.Match(name) {
				want = append(want, s.id)
			}
		}
		var got []uint64
		ix.forEachMatch(name, func(s *subscription) { got = append(got, s.id) })
		slices.Sort(got)
		require.Equal(t, want, got, "name %q", name)
	}
	var malformed int
	ix.forEachMatch("a..b", func(*subscription) { malformed++ })
	require.Equal(t, countOf(patterns, "*"), malformed, "malformed names match only the lone *")
}

func countOf(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

func TestPatternIndexMatchDoesNotAllocate(t *testing.T) {
	ix, _ := indexOf(t, benchPatterns(1000))
	n := testing.AllocsPerRun(100, func() {
		m := 0
		ix.forEachMatch("domain7.created", func(*subscription) { m++ })
		if m != 3 {
			panic(fmt.Sprint(m))
		}
	})
	require.Zero(t, n)
}

// BenchmarkPatternIndexMatch finds the subscriptions matching one event name
// among 10, 100 and 1,000 subscriptions; the cost follows the name's
// segments, not the subscription count.
func BenchmarkPatternIndexMatch(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			ix, _ := indexOf(b, benchPatterns(n))
			b.ReportAllocs()
			for b.Loop() {
				m := 0
				ix.forEachMatch("domain1.created", func(*subscription) { m++ })
			}
		})
	}
}

// BenchmarkPatternLinearMatch is the naive alternative (Match against every
// subscription), for comparison with BenchmarkPatternIndexMatch.
func BenchmarkPatternLinearMatch(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			_, subs := indexOf(b, benchPatterns(n))
			b.ReportAllocs()
			for b.Loop() {
				var buf [64]*subscription
				m := buf[:0]
				for _, s := range subs {
					if s.pattern.Match("domain1.created") {
						m = append(m, s)
					}
				}
				_ = m
			}
		})
	}
}
