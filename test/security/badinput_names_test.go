package security_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/eventstest"
)

// TestCreateTaskRefusesHostileNames: namespaces, template names and versions
// carrying SQL, LIKE wildcards, look-alike unicode, NUL, invalid UTF-8 or
// thousands of characters find no template (they are bind parameters, never
// SQL) or are refused as input; bad task contexts are refused. Nothing is
// created.
func TestCreateTaskRefusesHostileNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "domain_event_publishing"
	goodCtx := json.RawMessage(`{"order_id":"` + uuid.NewString() + `","customer_id":"c-1"}`)
	before := takeSnapshot(t, e.admin)
	for _, c := range []struct {
		what              string
		ns, name, version string
		context           string
		notFound          bool // else invalid input (a malformed namespace is refused before any SQL)
	}{
		{what: "namespace with SQL", ns: `domain_events'; DROP TABLE stepevents.tasks; --`, name: name},
		{what: "namespace OR 1=1", ns: `domain_events' OR '1'='1`, name: name},
		{what: "namespace LIKE wildcard", ns: `%`, name: name},
		{what: "namespace regex", ns: `.*`, name: name},
		{what: "upper-case namespace", ns: "DOMAIN_EVENTS", name: name},
		{what: "namespace with a trailing space", ns: namespace + " ", name: name},
		{what: "namespace with a Cyrillic o", ns: "dоmain_events", name: name},
		{what: "namespace of 10000 characters", ns: strings.Repeat("n", 10000), name: name},
		{what: "empty namespace", ns: "", name: name},
		{what: "name with SQL", ns: namespace, name: name + `' OR '1'='1`, notFound: true},
		{what: "version with SQL", ns: namespace, name: name, version: `1.0.0' OR '1'='1`, notFound: true},
		{what: "version of another shape", ns: namespace, name: name, version: "1.0", notFound: true},
		{what: "namespace with NUL", ns: namespace + "\x00", name: name},
		{what: "namespace with invalid UTF-8", ns: namespace + "\xff", name: name},
		{what: "name with NUL", ns: namespace, name: name + "\x00"},
		{what: "context not JSON", ns: namespace, name: name, context: `{"order_id":`},
		{what: "context with \\u0000", ns: namespace, name: name,
			context: `{"order_id":"` + uuid.NewString() + `","customer_id":"c\u0000"}`},
		{what: "context with invalid UTF-8", ns: namespace, name: name,
			context: `{"order_id":"` + uuid.NewString() + "\",\"customer_id\":\"c\xff\"}"},
		{what: "context against the input schema", ns: namespace, name: name, context: `{"order_id":"'; DROP TABLE x; --"}`},
	} {
		p := events.CreateTaskParams{Namespace: c.ns, Name: c.name, Version: c.version, Context: goodCtx}
		if c.context != "" {
			p.Context = json.RawMessage(c.context)
		}
		_, err := events.CreateTask(e.ctx, e.admin, p)
		if c.notFound {
			require.ErrorIs(t, err, events.ErrNotFound, c.what)
			require.ErrorContains(t, err, "not found", c.what)
		} else {
			requireInvalid(t, err, c.what)
		}
	}
	requireUnchanged(t, e.admin, before, "refused task creations")

	_, err := events.CreateTask(e.ctx, e.admin, events.CreateTaskParams{Namespace: namespace, Name: name, Context: goodCtx})
	require.NoError(t, err, "control")
}

// TestCaptureRefusesHostileNamespaces: the test capture helpers build a
// table name from the namespace, so they check it before any SQL.
func TestCaptureRefusesHostileNamespaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	capture := eventstest.NewDurableEventCapture(e.admin)
	for _, ns := range []string{`domain_events; DROP TABLE stepevents.tasks; --`, `domain_events"`, "Domain_Events",
		"dömain_events", "domain_events\x00", strings.Repeat("n", 30), ""} {
		_, err := capture.Events(e.ctx, ns)
		require.ErrorContains(t, err, "eventstest: namespace", "%q", ns)
		_, err = capture.Count(e.ctx, ns)
		require.ErrorContains(t, err, "eventstest: namespace", "%q", ns)
	}
	_, err := capture.Events(e.ctx, "no_such_ns")
	require.ErrorContains(t, err, `relation "pgmq.q_no_such_ns_domain_events" does not exist`)
	require.Equal(t, []string{"stepevents.tasks:r"}, filter(strings.Split(takeSnapshot(t, e.admin)["relations"], ","), "stepevents.tasks:"))
}

func filter(ss []string, prefix string) []string {
	var out []string
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
