package eventstest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

// QueueSuffix is appended to a namespace to name its domain-event queue.
const QueueSuffix = "_domain_events"

// CapturedEvent is one message of a namespace queue.
type CapturedEvent struct {
	MsgID int64
	// Event is the message decoded as an events.Event (zero if it is not one).
	Event events.Event
	// Message is the message body as stored.
	Message    json.RawMessage
	Headers    map[string]any
	EnqueuedAt time.Time
	// VT is the visibility timeout: a message read by a consumer is listed
	// anyway, with VT in the future and ReadCount > 0.
	VT        time.Time
	ReadCount int
}

// DurableEventCapture lists and asserts on the durable events in namespace
// queues. It reads the queue table directly (ORDER BY msg_id) instead of
// pgmq.read, so it neither hides messages under a visibility timeout nor
// changes them. It remembers every msg_id it has listed, for CleanupTracked.
// It is safe for concurrent use.
type DurableEventCapture struct {
	db events.Executor

	mu      sync.Mutex
	tracked map[string][]int64 // namespace -> msg_ids, in the order first seen
}

// NewDurableEventCapture returns a capture reading through db: a pool, or a
// transaction to see events not yet committed.
func NewDurableEventCapture(db events.Executor) *DurableEventCapture {
	return &DurableEventCapture{db: db, tracked: map[string][]int64{}}
}

// queueTable validates ns and returns the quoted queue table. The namespace
// is checked before it reaches an identifier, and quoted by pgx.
func queueTable(ns string) (string, error) {
	if err := template.ValidNamespace(ns); err != nil {
		return "", fmt.Errorf("eventstest: %w", err)
	}
	return pgx.Identifier{"pgmq", "q_" + ns + QueueSuffix}.Sanitize(), nil
}

// Events lists every message in the namespace queue, by msg_id.
func (c *DurableEventCapture) Events(ctx context.Context, ns string) ([]CapturedEvent, error) {
	table, err := queueTable(ns)
	if err != nil {
		return nil, err
	}
	rows, err := c.db.Query(ctx, `SELECT msg_id, message, headers, enqueued_at, vt, read_ct FROM `+table+` ORDER BY msg_id`)
	if err != nil {
		return nil, fmt.Errorf("eventstest: error listing queue %s: %w", table, err)
	}
	defer rows.Close()
	var out []CapturedEvent
	for rows.Next() {
		var e CapturedEvent
		var msg, hdr []byte
		if err := rows.Scan(&e.MsgID, &msg, &hdr, &e.EnqueuedAt, &e.VT, &e.ReadCount); err != nil {
			return nil, fmt.Errorf("eventstest: error reading queue %s: %w", table, err)
		}
		e.Message = msg
		_ = json.Unmarshal(msg, &e.Event) // not every message need be an event
		if len(hdr) > 0 {
			_ = json.Unmarshal(hdr, &e.Headers)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstest: error reading queue %s: %w", table, err)
	}
	c.track(ns, out)
	return out, nil
}

func (c *DurableEventCapture) track(ns string, evs []CapturedEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range evs {
		if !slices.Contains(c.tracked[ns], e.MsgID) {
			c.tracked[ns] = append(c.tracked[ns], e.MsgID)
		}
	}
}

// Tracked returns the msg_ids of ns listed so far and not cleaned up.
func (c *DurableEventCapture) Tracked(ns string) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.tracked[ns])
}

// Count returns how many messages the namespace queue holds.
func (c *DurableEventCapture) Count(ctx context.Context, ns string) (int, error) {
	evs, err := c.Events(ctx, ns)
	return len(evs), err
}

func describe(e CapturedEvent) string {
	return fmt.Sprintf("%s (msg %d)", e.Event.EventName, e.MsgID)
}

// RequirePublished fails t unless the namespace queue holds an event named
// eventName, and returns the latest such event (highest msg_id). The failure
// message lists what was published instead.
func (c *DurableEventCapture) RequirePublished(t testingT, ns, eventName string) CapturedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := c.Events(ctx, ns)
	if err != nil {
		internalf(t, err)
		return CapturedEvent{}
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Event.EventName == eventName {
			return evs[i]
		}
	}
	failuref(t, "expected event %q in the queue of namespace %q, but it was not published; published %s",
		eventName, ns, listNames(evs, describe))
	return CapturedEvent{}
}

// RequireNotPublished fails t if the namespace queue holds an event named
// eventName, listing those messages.
func (c *DurableEventCapture) RequireNotPublished(t testingT, ns, eventName string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := c.Events(ctx, ns)
	if err != nil {
		internalf(t, err)
		return
	}
	matching := slices.DeleteFunc(evs, func(e CapturedEvent) bool { return e.Event.EventName != eventName })
	if len(matching) > 0 {
		failuref(t, "expected no event %q in the queue of namespace %q, but found %s",
			eventName, ns, listNames(matching, describe))
	}
}

// WaitFor polls the namespace queue until an event named eventName appears
// and returns the first one, or fails after timeout (or when ctx ends) with
// an error listing what was published.
func (c *DurableEventCapture) WaitFor(ctx context.Context, ns, eventName string, timeout time.Duration) (CapturedEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		evs, err := c.Events(ctx, ns)
		if err != nil {
			return CapturedEvent{}, err
		}
		for _, e := range evs {
			if e.Event.EventName == eventName {
				return e, nil
			}
		}
		select {
		case <-ctx.Done():
			return CapturedEvent{}, fmt.Errorf("eventstest: event %q not published in namespace %q within %s; published %s: %w",
				eventName, ns, timeout, listNames(evs, describe), ctx.Err())
		case <-tick.C:
		}
	}
}

// CleanupResult says what CleanupTracked did.
type CleanupResult struct {
	// Deleted messages were still in the queue.
	Deleted int `json:"deleted"`
	// Failed messages were already gone (consumed, archived or deleted).
	Failed int `json:"failed"`
}

// CleanupTracked deletes msgIDs (all the tracked ids of ns when nil) from
// the namespace queue with pgmq.delete. Messages already consumed are
// counted as Failed, not reported as errors; an error means the database
// refused (the queue does not exist, the connection failed). Deleted and
// failed ids are no longer tracked.
func (c *DurableEventCapture) CleanupTracked(ctx context.Context, ns string, msgIDs []int64) (CleanupResult, error) {
	if _, err := queueTable(ns); err != nil {
		return CleanupResult{}, err
	}
	if msgIDs == nil {
		msgIDs = c.Tracked(ns)
	}
	var res CleanupResult
	var done []int64
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.tracked[ns] = slices.DeleteFunc(c.tracked[ns], func(id int64) bool { return slices.Contains(done, id) })
	}()
	for _, id := range msgIDs {
		var deleted bool
		if err := c.db.QueryRow(ctx, `SELECT pgmq.delete($1::text, $2::bigint)`, ns+QueueSuffix, id).Scan(&deleted); err != nil {
			return res, fmt.Errorf("eventstest: error deleting message %d from %s: %w", id, ns+QueueSuffix, err)
		}
		if deleted {
			res.Deleted++
		} else {
			res.Failed++
		}
		done = append(done, id)
	}
	return res, nil
}
