// Package eventstest holds test helpers for code that publishes or
// subscribes to stepevents events, in the manner of River's rivertest:
// DurableEventCapture asserts on what reached a namespace's pgmq queue (with
// plain SQL, so visibility timeouts hide nothing), FastEventCapture records
// what a Bus delivered.
//
// Assertion failures go through testingT (a *testing.T satisfies it) and
// are prefixed "stepevents assertion failure:"; problems talking to the
// database are reported separately as "stepevents internal failure:".
package eventstest

import "fmt"

// testingT is the part of testing.TB the helpers use, so that the helpers'
// own tests can check their failure messages.
type testingT interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

func failuref(t testingT, format string, args ...any) {
	t.Helper()
	t.Fatalf("stepevents assertion failure: "+format, args...)
}

func internalf(t testingT, err error) {
	t.Helper()
	t.Fatalf("stepevents internal failure: %v", err)
}

func listNames[T any](items []T, describe func(T) string) string {
	if len(items) == 0 {
		return "nothing"
	}
	s := ""
	for i, it := range items {
		if i > 0 {
			s += ", "
		}
		s += describe(it)
	}
	return fmt.Sprintf("%d: [%s]", len(items), s)
}
