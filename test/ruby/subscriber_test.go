package ruby_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// env is the environment a run gets: the test database, and no signing key
// or channel inherited from the caller's environment.
func env(url string, extra ...string) []string {
	return append([]string{"DATABASE_URL=" + url, "STEPEVENTS_SIGNING_KEY=", "STEPEVENTS_CHANNEL="}, extra...)
}

func TestRubySubscriberReceivesFastEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, events.Config{})
	p := startRuby(t, env(b.url), "--max", "5", "--failing-subscriber", "order.validated")
	p.waitListening(t)
	sc := b.publishScenario(t)

	lines := p.wait(t, 0)
	require.ElementsMatch(t, sc.fast, loggedEvents(lines), "the logging subscriber printed exactly the Go completions' fast events")

	m := metricsLine(t, lines)
	require.Equal(t, rubyMetrics{EventsReceived: 5, SuccessEvents: 4, FailureEvents: 1, ByEventName: map[string]int{
		"order.validated": 2, "payment.processed": 1, "notification.sent": 1, "payment.failed.retryable": 1}},
		*m.Metrics, "success and failure come from payload.execution_result.success, read with string keys")

	h := m.Listener
	require.Equal(t, events.DefaultChannel, h.Channel)
	require.Equal(t, 5, h.Published)
	require.Equal(t, sc.byReference, h.RefsResolved, "the oversized events were read from the stash")
	require.Zero(t, h.RefErrors)
	require.Zero(t, h.DroppedMalformed)
	require.Zero(t, h.DroppedForged)
	require.Zero(t, h.DroppedOverflow)
	require.Equal(t, h.Received, h.Decoded)
	require.Empty(t, h.QueueUsageError)
	require.NotNil(t, h.NotificationQueueUsage)

	logging, metrics, failing := h.sub(t, "logging"), h.sub(t, "metrics"), h.sub(t, "failing")
	require.Equal(t, []string{"*"}, logging.Patterns)
	require.Equal(t, 5, logging.Delivered)
	require.Equal(t, 5, metrics.Delivered)
	require.Zero(t, logging.HandlerErrors+metrics.HandlerErrors+logging.Dropped+metrics.Dropped)
	require.Equal(t, []string{"order.validated"}, failing.Patterns)
	require.Equal(t, 2, failing.HandlerErrors, "the raising handler's exceptions were rescued and counted")
	require.Zero(t, failing.Delivered)
}

func TestRubySubscriberPatterns(t *testing.T) {
	t.Parallel()
	b := setup(t, events.Config{})
	// payment.* is exactly one segment: payment.processed, not
	// payment.failed.retryable (the original Ruby subscriber matched both).
	p := startRuby(t, env(b.url), "--max", "5", "--pattern", "payment.*", "--pattern", "notification.sent")
	p.waitListening(t)
	sc := b.publishScenario(t)

	lines := p.wait(t, 0)
	var want []loggedEvent
	for _, e := range sc.fast {
		if e.Name == "payment.processed" || e.Name == "notification.sent" {
			want = append(want, e)
		}
	}
	require.ElementsMatch(t, want, loggedEvents(lines))
	m := metricsLine(t, lines)
	require.Equal(t, rubyMetrics{EventsReceived: 2, SuccessEvents: 2,
		ByEventName: map[string]int{"payment.processed": 1, "notification.sent": 1}}, *m.Metrics)
	require.Equal(t, 5, m.Listener.Published, "every event arrived; the patterns chose two")
	require.Equal(t, []string{"payment.*", "notification.sent"}, m.Listener.sub(t, "metrics").Patterns)
}

func TestRubySubscriberRejectsInvalidPattern(t *testing.T) {
	t.Parallel()
	p := startRuby(t, env("postgres://unused.invalid/x"), "--pattern", "payment.*", "--pattern", "pay*")
	p.wait(t, 2)
	_, stderr := p.lines()
	require.Contains(t, strings.Join(stderr, "\n"),
		`invalid subscription pattern "pay*": segment "pay*" mixes a wildcard with other characters`)
}

// wireEnvelope builds a NOTIFY payload as events/envelope.go does, with env
// written as given (so the test controls its exact bytes) and sig as given.
func wireEnvelope(t *testing.T, env, sig string) string {
	t.Helper()
	b, err := json.Marshal(struct {
		V   int             `json:"v"`
		Sig string          `json:"sig,omitempty"`
		Env json.RawMessage `json:"env"`
	}{1, sig, json.RawMessage(env)})
	require.NoError(t, err)
	// json.Marshal compacts RawMessage; splice the env back verbatim.
	var compact strings.Builder
	compact.WriteString(`{"v":1,`)
	if sig != "" {
		compact.WriteString(`"sig":"` + sig + `",`)
	}
	compact.WriteString(`"env":` + env + `}`)
	require.JSONEq(t, string(b), compact.String())
	return compact.String()
}

func hmacHex(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func TestRubySubscriberSignedEnvelopes(t *testing.T) {
	t.Parallel()
	const key = "ruby-test-signing-key"
	b := setup(t, events.Config{SigningKey: []byte(key)})
	p := startRuby(t, env(b.url, "STEPEVENTS_SIGNING_KEY="+key), "--max", "6")
	p.waitListening(t)

	event := func(id uuid.UUID) string {
		raw, err := json.Marshal(events.Event{EventID: id, EventName: "order.validated", EventVersion: events.EventVersion,
			Payload:  events.EventPayload{ExecutionResult: events.ExecutionResult{Success: true}},
			Metadata: events.EventMetadata{TaskUUID: id, StepName: stepValidate, Namespace: namespace}})
		require.NoError(t, err)
		return string(raw)
	}
	forgedID, unsignedID, handID := uuid.New(), uuid.New(), uuid.New()
	forgedEnv := `{"events":[` + event(forgedID) + `]}`
	unsignedEnv := `{"events":[` + event(unsignedID) + `]}`
	// Signed by hand with the right key, with whitespace Go's encoder never
	// writes: the signature covers env's bytes as sent, not a re-encoding.
	handEnv := `{ "events" : [ ` + event(handID) + ` ] }`
	payloads := map[string]string{
		"forged":   wireEnvelope(t, forgedEnv, hmacHex("some other key", forgedEnv)),
		"unsigned": wireEnvelope(t, unsignedEnv, ""),
		"garbage":  `not json at all`,
		"hand":     wireEnvelope(t, handEnv, hmacHex(key, handEnv)),
	}
	// Go's own decoder makes the same decisions the Ruby one must make.
	_, err := events.DecodeEnvelope([]byte(payloads["forged"]), []byte(key))
	require.ErrorIs(t, err, events.ErrForgedEnvelope)
	_, err = events.DecodeEnvelope([]byte(payloads["unsigned"]), []byte(key))
	require.ErrorIs(t, err, events.ErrUnsignedEnvelope)
	_, err = events.DecodeEnvelope([]byte(payloads["garbage"]), []byte(key))
	require.ErrorIs(t, err, events.ErrMalformedEnvelope)
	_, err = events.DecodeEnvelope([]byte(payloads["hand"]), []byte(key))
	require.NoError(t, err)

	// Sent before the client's events, each in its own transaction, so
	// Ruby has handled them by the time it has seen the six genuine events.
	for _, name := range []string{"forged", "unsigned", "garbage", "hand"} {
		_, err := b.pool.Exec(b.ctx, `SELECT pg_notify($1, $2)`, events.DefaultChannel, payloads[name])
		require.NoError(t, err, name)
	}
	sc := b.publishScenario(t)
	want := append(sc.fast, loggedEvent{"order.validated", handID.String(), handID.String(), stepValidate, namespace})

	lines := p.wait(t, 0)
	got := loggedEvents(lines)
	require.ElementsMatch(t, want, got, "signed events arrived; forged, unsigned and malformed ones did not")
	m := metricsLine(t, lines)
	require.Equal(t, 6, m.Metrics.EventsReceived)
	require.Equal(t, 2, m.Listener.DroppedForged, "forged and unsigned")
	require.Equal(t, 1, m.Listener.DroppedMalformed)
	require.Equal(t, m.Listener.Received, m.Listener.Decoded+3)
	require.Equal(t, sc.byReference, m.Listener.RefsResolved)
}

func TestRubySubscriberStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	b := setup(t, events.Config{})
	p := startRuby(t, env(b.url))
	p.waitListening(t)
	tk := b.newTask(t)
	want := fastOf(tk, stepValidate,
		b.complete(t, tk, stepValidate, `{"order_id":"o-1","validation_timestamp":"2026-11-28T10:00:00Z"}`))
	p.waitFor(t, "the event line", exitTimeout, func(stdout, _ []string) bool {
		return contains(stdout, func(l string) bool { return strings.Contains(l, want[0].ID) })
	})
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))

	lines := p.wait(t, 0)
	require.Equal(t, want, loggedEvents(lines))
	m := metricsLine(t, lines)
	require.Equal(t, rubyMetrics{EventsReceived: 1, SuccessEvents: 1, ByEventName: map[string]int{"order.validated": 1}},
		*m.Metrics)
}

func TestRubySubscriberReconnectsAfterTerminate(t *testing.T) {
	t.Parallel()
	b := setup(t, events.Config{})
	p := startRuby(t, env(b.url), "--max", "1")
	p.waitListening(t)

	var terminated int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
		FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'stepevents_ruby_listener'`).
		Scan(&terminated))
	require.Equal(t, 1, terminated, "Ruby's LISTEN backend")
	p.waitFor(t, "the reconnect log line", 30*time.Second, func(_, stderr []string) bool {
		return contains(stderr, func(l string) bool { return strings.Contains(l, "reconnected; fast events sent meanwhile are lost") })
	})

	tk := b.newTask(t)
	want := fastOf(tk, stepValidate,
		b.complete(t, tk, stepValidate, `{"order_id":"o-1","validation_timestamp":"2026-11-28T10:00:00Z"}`))
	lines := p.wait(t, 0)
	require.Equal(t, want, loggedEvents(lines), "events published after the reconnect arrive")
	require.True(t, contains(stdoutMsgs(lines), func(m string) bool { return strings.Contains(m, "gap in fast events") }),
		"the logging subscriber logged the gap")
	m := metricsLine(t, lines)
	require.Equal(t, 1, m.Metrics.GapSignals)
	require.Equal(t, 1, m.Listener.Reconnects)
	require.Equal(t, 1, m.Listener.sub(t, "logging").Gaps)
	require.Equal(t, 1, m.Listener.sub(t, "metrics").Gaps)
}

func stdoutMsgs(lines []outLine) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, l.Msg)
	}
	return out
}
