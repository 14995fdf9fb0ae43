package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// rawListener is a bare LISTEN connection for the publishing tests, so they
// check what went over NOTIFY without depending on the Listener runtime.
type rawListener struct {
	b    *bundle
	conn *pgx.Conn
}

func (b *bundle) listen(t *testing.T) *rawListener {
	t.Helper()
	conn, err := pgx.ConnectConfig(b.ctx, b.pool.Config().ConnConfig.Copy())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = conn.Exec(b.ctx, `LISTEN `+events.DefaultChannel)
	require.NoError(t, err)
	return &rawListener{b: b, conn: conn}
}

// next returns the events of the next notification, references resolved,
// or nil when none arrives within wait.
func (l *rawListener) next(t *testing.T, wait time.Duration) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(l.b.ctx, wait)
	defer cancel()
	n, err := l.conn.WaitForNotification(ctx)
	if err != nil {
		require.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
		return nil
	}
	env, err := events.DecodeEnvelope([]byte(n.Payload), nil)
	require.NoError(t, err)
	var out []events.Event
	for _, raw := range env.Events {
		var ev events.Event
		require.NoError(t, json.Unmarshal(raw, &ev))
		out = append(out, ev)
	}
	for _, id := range env.Refs {
		var raw []byte
		require.NoError(t, l.b.pool.QueryRow(l.b.ctx, `SELECT event FROM stepevents.fast_event_stash WHERE event_id = $1`, id).Scan(&raw))
		var ev events.Event
		require.NoError(t, json.Unmarshal(raw, &ev))
		out = append(out, ev)
	}
	return out
}

// collect reads notifications until n events arrived (failing after 5 s).
func (l *rawListener) collect(t *testing.T, n int) []events.Event {
	t.Helper()
	var out []events.Event
	deadline := time.Now().Add(5 * time.Second)
	for len(out) < n {
		left := time.Until(deadline)
		require.Positive(t, left, "waited for %d fast events, got %d: %v", n, len(out), eventNames(out))
		out = append(out, l.next(t, left)...)
	}
	return out
}

func eventNames(evs []events.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.EventName)
	}
	return out
}
