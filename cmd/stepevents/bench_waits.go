package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// waitSampleInterval is how often --sample-waits looks at pg_stat_activity.
const waitSampleInterval = 10 * time.Millisecond

// waitShare is one kind of backend activity and its share of the samples:
// where the scratch database's sessions spend their time while a side runs.
type waitShare struct {
	// What is "state wait_event_type:wait_event statement", e.g.
	// "active Lock:object commit" (the NOTIFY commit lock) or
	// "idle in transaction Client:ClientRead RecordStepResult" (waiting
	// for the client after that statement).
	What  string  `json:"what"`
	Share float64 `json:"share"`
}

// waitSampler samples the non-idle client sessions of the scratch database
// on a connection of its own while a side runs.
type waitSampler struct {
	conn   *pgx.Conn
	mu     sync.Mutex
	counts map[string]int
	total  int
	stop   context.CancelFunc
	done   chan struct{}
}

// sqlcName finds sqlc's "-- name: X" comment, the most telling label of a statement.
var sqlcName = regexp.MustCompile(`-- name: (\w+)`)

func startWaitSampler(ctx context.Context, e *benchEnv) (*waitSampler, error) {
	conn, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("error connecting the wait sampler: %w", err)
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	w := &waitSampler{conn: conn, counts: map[string]int{}, stop: stop, done: make(chan struct{})}
	go w.run(sctx)
	return w, nil
}

func (w *waitSampler) run(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(waitSampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rows, err := w.conn.Query(ctx, `SELECT state, coalesce(wait_event_type, ''), coalesce(wait_event, ''), query
			FROM pg_stat_activity
			WHERE datname = current_database() AND backend_type = 'client backend'
			  AND pid <> pg_backend_pid() AND state <> 'idle'`)
		if err != nil {
			return
		}
		var keys []string
		for rows.Next() {
			var state, wtype, wevent, query string
			if rows.Scan(&state, &wtype, &wevent, &query) == nil {
				keys = append(keys, waitKey(state, wtype, wevent, query))
			}
		}
		rows.Close()
		w.mu.Lock()
		for _, k := range keys {
			w.counts[k]++
			w.total++
		}
		w.mu.Unlock()
	}
}

// waitKey labels one session sample.
func waitKey(state, wtype, wevent, query string) string {
	what := "-" // idle in transaction without a wait event: between two client messages
	switch {
	case wtype != "":
		what = wtype + ":" + wevent
	case state == "active":
		what = "CPU"
	}
	stmt := strings.Join(strings.Fields(query), " ")
	if m := sqlcName.FindStringSubmatch(stmt); m != nil {
		stmt = m[1]
	} else if len(stmt) > 40 {
		stmt = stmt[:40] + "…"
	}
	return state + " " + what + " " + stmt
}

// reset forgets the samples so far (taken between slices).
func (w *waitSampler) reset() {
	w.mu.Lock()
	clear(w.counts)
	w.total = 0
	w.mu.Unlock()
}

// snapshot returns the samples since the last reset, merged into into.
func (w *waitSampler) snapshot(into map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, n := range w.counts {
		into[k] += n
	}
}

func (w *waitSampler) close(ctx context.Context) {
	w.stop()
	<-w.done
	_ = w.conn.Close(ctx)
}

// topWaits turns sample counts into the n largest shares.
func topWaits(counts map[string]int, n int) []waitShare {
	total := 0
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return nil
	}
	out := make([]waitShare, 0, len(counts))
	for k, c := range counts {
		out = append(out, waitShare{What: k, Share: round3(float64(c) / float64(total))})
	}
	slices.SortFunc(out, func(a, b waitShare) int {
		if a.Share != b.Share {
			if a.Share > b.Share {
				return -1
			}
			return 1
		}
		return strings.Compare(a.What, b.What)
	})
	return out[:min(n, len(out))]
}
