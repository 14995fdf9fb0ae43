package main

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/test/testdb"
)

// TestListenUnresolvedGap: a stash reference the listener cannot resolve is
// printed as a gap line that says what was lost and why.
func TestListenUnresolvedGap(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	p := startListenProcess(t, url)
	require.Contains(t, nextLine(t, p.stderr, "listening line"), "listening on channel stepevents_events")

	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	missing := uuid.New()
	_, err = pool.Exec(context.Background(), `SELECT pg_notify($1, $2)`, events.DefaultChannel,
		`{"v":1,"env":{"refs":["`+missing.String()+`"]}}`)
	require.NoError(t, err)
	require.Regexp(t, `^gap: unresolved on channel stepevents_events: 1 stashed event\(s\) could not be fetched at \d\d:\d\d:\d\d\.\d{3} `+
		regexp.QuoteMeta(`(stashed event `+missing.String()+` not found: pruned after an hour, or a forged reference); those fast events are lost`)+`$`,
		nextLine(t, p.stdout, "gap line"))

	code, rest := p.stop(t)
	require.Equal(t, 0, code, rest)
	require.Contains(t, rest, "stopped: 0 event(s) printed")
}

func TestListenGapLines(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.Local)
	for _, c := range []struct {
		gap  events.GapSignal
		want string
	}{
		{events.GapSignal{Channel: "c", Reconnects: 2, DisconnectedAt: since, ReconnectedAt: since.Add(1500 * time.Millisecond),
			Since: since, Cause: "EOF"},
			"gap: reconnected to channel c after 1.5s (reconnect 2); fast events sent meanwhile are lost"},
		{events.GapSignal{Kind: events.GapOverflow, Channel: "c", Since: since, Dropped: 12, Cause: "behind"},
			"gap: overflow on channel c: 12 notification(s) dropped since 03:04:05.678 (behind); the fast events they carried are lost"},
		{events.GapSignal{Kind: events.GapUnresolved, Channel: "c", Since: since, Dropped: 1, Cause: "not found"},
			"gap: unresolved on channel c: 1 stashed event(s) could not be fetched at 03:04:05.678 (not found); those fast events are lost"},
		{events.GapSignal{Kind: events.GapKind(7), Channel: "c", Dropped: 3},
			"gap: GapKind(7) on channel c: 3 dropped; fast events were lost"},
	} {
		require.Equal(t, c.want, gapLine(c.gap))
	}

	line, err := json.Marshal(listenedJSON{Gap: &events.GapSignal{Kind: events.GapOverflow, Channel: "c",
		Since: time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC), Dropped: 12, Cause: "behind"}})
	require.NoError(t, err)
	require.JSONEq(t, `{"gap":{"kind":"overflow","channel":"c","reconnects":0,"since":"2026-01-02T03:04:05.678Z","dropped":12,"cause":"behind"}}`,
		string(line))
}
