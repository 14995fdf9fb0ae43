package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

func TestPatternMatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, name string
		want          bool
	}{
		// The lone * matches every event, whatever its shape.
		{"*", "payment.processed", true},
		{"*", "payment.failed.retryable", true},
		{"*", "order", true},
		{"*", "", true},
		// Exact names.
		{"payment.processed", "payment.processed", true},
		{"payment.processed", "payment.processed.now", false},
		{"payment.processed", "payment", false},
		{"payment.processed", "payment.processe", false},
		{"payment.processed", "payment.processedx", false},
		{"order", "order", true},
		{"order", "order.validated", false},
		// * is exactly one segment.
		{"payment.*", "payment.processed", true},
		{"payment.*", "payment.failed", true},
		{"payment.*", "payment.failed.retryable", false},
		{"payment.*", "payment", false},
		{"payment.*", "payments.processed", false},
		{"payment.*", "order.validated", false},
		{"*.failed", "payment.failed", true},
		{"*.failed", "inventory.failed", true},
		{"*.failed", "payment.failed.retryable", false},
		{"*.failed.*", "payment.failed.retryable", true},
		{"*.failed.*", "payment.failed", false},
		{"*.*", "payment.processed", true},
		{"*.*", "payment", false},
		{"*.*", "a.b.c", false},
		{"payment.*.retryable", "payment.failed.retryable", true},
		{"payment.*.retryable", "payment.failed.permanent", false},
		// > is one or more trailing segments.
		{"payment.>", "payment.processed", true},
		{"payment.>", "payment.failed.retryable", true},
		{"payment.>", "payment", false},
		{"payment.>", "paymentx.processed", false},
		{"payment.failed.>", "payment.failed.retryable", true},
		{"payment.failed.>", "payment.failed", false},
		{"*.>", "payment.processed", true},
		{"*.>", "payment", false},
		{">", "payment", true},
		{">", "payment.failed.retryable", true},
		// Malformed names match nothing but the lone *.
		{"payment.>", "payment..x", false},
		{"payment.*", "payment.", false},
		{"*.processed", ".processed", false},
		{">", "", false},
		{"payment.processed", "", false},
		// Case-sensitive.
		{"payment.*", "Payment.processed", false},
	}
	for _, tc := range cases {
		p, err := events.ParsePattern(tc.pattern)
		require.NoError(t, err, tc.pattern)
		require.Equal(t, tc.want, p.Match(tc.name), "pattern %q, name %q", tc.pattern, tc.name)
		require.Equal(t, tc.want, refMatch(tc.pattern, tc.name), "reference matcher disagrees: %q, %q", tc.pattern, tc.name)
	}
}

func TestParsePatternInvalid(t *testing.T) {
	t.Parallel()
	cases := []struct{ pattern, want string }{
		{"", `invalid subscription pattern "": it is empty`},
		{"pay*", `invalid subscription pattern "pay*": segment "pay*" mixes a wildcard with other characters`},
		{"payment.proc*", `segment "proc*" mixes a wildcard`},
		{"payment.>x", `segment ">x" mixes a wildcard`},
		{"**", `invalid subscription pattern "**": segment "**" repeats wildcards`},
		{"payment.**", `segment "**" repeats wildcards`},
		{">.payment", `invalid subscription pattern ">.payment": ">" must be the last segment`},
		{"payment.>.x", `">" must be the last segment`},
		{"payment..processed", `invalid subscription pattern "payment..processed": segment 2 is empty`},
		{".payment", `segment 1 is empty`},
		{"payment.", `segment 2 is empty`},
		{".", `segment 1 is empty`},
		{"Payment.processed", `segment "Payment" has upper case; event names are lower case, so use "payment.processed"`},
		{"payment.Processed", `has upper case`},
		{"payment-processed", `segment "payment-processed" contains '-'`},
		{"payment processed", `contains ' '`},
		{"payment.proceßed", `contains`},
		{strings.Repeat("a", 300), `is 300 characters long; at most 255`},
	}
	for _, tc := range cases {
		_, err := events.ParsePattern(tc.pattern)
		require.Error(t, err, tc.pattern)
		require.Contains(t, err.Error(), tc.want, tc.pattern)
		require.True(t, errors.Is(err, events.ErrInvalidInput), tc.pattern)
	}
}

func TestPatternString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "payment.>", events.MustParsePattern("payment.>").String())
	require.False(t, events.Pattern{}.Match("payment.processed"), "the zero Pattern matches nothing")
	require.Panics(t, func() { events.MustParsePattern("pay*") })
}

func TestPatternMatchDoesNotAllocate(t *testing.T) {
	p := events.MustParsePattern("payment.*.>")
	n := testing.AllocsPerRun(100, func() {
		_ = p.Match("payment.failed.retryable.now")
		_ = p.Match("order.validated")
	})
	require.Zero(t, n)
}

// refMatch is the grammar written the obvious way, to check Match against.
func refMatch(pattern, name string) bool {
	if pattern == "*" {
		return true
	}
	ns := strings.Split(name, ".")
	for _, s := range ns {
		if s == "" {
			return false
		}
	}
	ps := strings.Split(pattern, ".")
	for i, p := range ps {
		if p == ">" {
			return len(ns) > i
		}
		if i >= len(ns) || (p != "*" && p != ns[i]) {
			return false
		}
	}
	return len(ns) == len(ps)
}

func FuzzPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"*", "payment.processed"}, {"payment.*", "payment.failed.retryable"}, {"payment.>", "payment"},
		{"*.failed.>", "payment.failed.retryable"}, {"pay*", "payment"}, {">.x", "a.x"}, {"a..b", "a..b"},
		{"", ""}, {"a.b", "a.b."},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		p, err := events.ParsePattern(pattern)
		if err != nil {
			require.ErrorIs(t, err, events.ErrInvalidInput)
			require.False(t, p.Match(name), "a failed parse returns the zero Pattern")
			return
		}
		got := p.Match(name)
		require.Equal(t, refMatch(pattern, name), got, "pattern %q, name %q", pattern, name)
		require.Equal(t, pattern, p.String())
	})
}

func BenchmarkPatternMatch(b *testing.B) {
	p := events.MustParsePattern("payment.*.>")
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Match("payment.failed.retryable")
	}
}
