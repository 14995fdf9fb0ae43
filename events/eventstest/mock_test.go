package eventstest_test

import (
	"fmt"
	"strings"
)

// mockT records failures instead of failing, so the helpers' messages can
// be asserted.
type mockT struct {
	failures []string
}

func (m *mockT) Helper() {}

func (m *mockT) Errorf(format string, args ...any) {
	m.failures = append(m.failures, fmt.Sprintf(format, args...))
}

func (m *mockT) Fatalf(format string, args ...any) {
	m.failures = append(m.failures, fmt.Sprintf(format, args...))
}

func (m *mockT) failed() bool { return len(m.failures) > 0 }

func (m *mockT) String() string { return strings.Join(m.failures, "\n") }
