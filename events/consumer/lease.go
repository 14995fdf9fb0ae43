package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// A batch's messages are leased together by the read, but handled one by
// one: without more, a handler that runs to the end of its lease would let
// every later message of the batch expire unhandled, and each expiry costs
// one of the message's MaxReads. So the leases of the waiting messages
// (read, not yet handled) are extended: by a leaseKeeper while an earlier
// handler runs, and before a handler starts if its own lease is short.

// leaseShort reports that m's lease, at now, leaves its handler less than
// HandlerTimeout, and that a quarter of the visibility timeout or more has
// passed since the lease began, so extending it is worth a statement: the
// handler then gets its full HandlerTimeout, or at least three quarters of
// the visibility timeout where HandlerTimeout is longer. A batch of quick
// handlers never gets this far into its lease. A lost lease (zero) is not
// short: the statement that lost it renewed the others.
func (c *Consumer) leaseShort(m *message, now time.Time) bool {
	if m.leaseEnd.IsZero() {
		return false
	}
	left := m.leaseEnd.Sub(now)
	vt := c.cfg.VisibilityTimeout
	return left < c.cfg.HandlerTimeout && left <= vt-vt/4
}

// extendLeases renews the leases of the messages of msgs still held (their
// local lease has not ended: one that has may be another consumer's now)
// in one statement: pgmq sets their vt to the visibility timeout from its
// clock, and their local lease ends the visibility timeout after the local
// time taken before the statement, so still before the database's vt. A
// message the statement does not return (it is gone), or returns read
// again since (another consumer holds it), is lost: its lease is ended at
// once, so it is counted Expired when its turn comes. When the statement
// fails the error is logged and returned, and nothing changes: the
// messages keep their lease and may expire.
func (c *Consumer) extendLeases(ctx context.Context, msgs []message) error {
	if ctx.Err() != nil {
		return nil // stopping: the messages are released instead
	}
	now := c.now()
	var ids []int64
	var end time.Time // earliest lease end of the messages extended
	for i := range msgs {
		if m := &msgs[i]; m.held(now) {
			ids = append(ids, m.MsgID)
			if end.IsZero() || m.leaseEnd.Before(end) {
				end = m.leaseEnd
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	// Past the end of the leases, an extension could renew another
	// consumer's: give up then. (A duration: c.now need not be the clock
	// context reads.)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, end.Sub(now))
	defer cancel()
	readCounts, err := c.setVT(ctx, ids)
	if err != nil && parent.Err() != nil {
		return nil // stopping meanwhile: the messages are released instead
	}
	if err != nil {
		err = fmt.Errorf("stepevents consumer: error extending the leases of messages %v of %q: %w", ids, c.queue, err)
		c.cfg.Logger.Warn("stepevents consumer: leases not extended; the messages may expire unhandled",
			slog.String("queue", c.queue), slog.Any("msg_ids", ids), slog.String("err", err.Error()))
		return err
	}
	leaseEnd := now.Add(c.cfg.VisibilityTimeout)
	for i := range msgs {
		m := &msgs[i]
		if !m.held(now) {
			continue
		}
		if rc, ok := readCounts[m.MsgID]; ok && rc == m.ReadCount {
			m.leaseEnd = leaseEnd
			continue
		}
		m.leaseEnd = time.Time{}
		// Not decoded yet: no event name or id to log.
		c.cfg.Logger.Warn("stepevents consumer: lease lost: the message is gone or another consumer read it",
			slog.String("queue", c.queue), slog.Int64("msg_id", m.MsgID), slog.Int("read_ct", m.ReadCount))
	}
	return nil
}

// setVT hides the messages ids for the visibility timeout from now, in one
// statement (valid on pgmq and on the compatible schema alike), and
// returns the read count of each it found.
func (c *Consumer) setVT(ctx context.Context, ids []int64) (map[int64]int, error) {
	rows, err := c.pool.Query(ctx,
		`SELECT s.msg_id, s.read_ct FROM unnest($2::bigint[]) AS id, LATERAL pgmq.set_vt($1::text, id, $3::integer) AS s`,
		c.queue, ids, int(c.cfg.VisibilityTimeout/time.Second))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[int64]int, len(ids))
	for rows.Next() {
		var id int64
		var rc int
		if err := rows.Scan(&id, &rc); err != nil {
			return nil, err
		}
		found[id] = rc
	}
	return found, rows.Err()
}

// waitingEnd is when the leases of msgs, a batch's waiting messages, end.
// All of them still held share one lease (the read's, or the last
// extension's: every extension covers all the waiting messages still
// held), so the first one held gives it; ok is false when none is.
func waitingEnd(msgs []message) (end time.Time, ok bool) {
	for i := range msgs {
		if !msgs[i].leaseEnd.IsZero() {
			return msgs[i].leaseEnd, true
		}
	}
	return time.Time{}, false
}

// leaseKeeper extends the leases of a batch's waiting messages from a timer
// while a handler runs, when they have half of their lease left, so that a
// handler running to the end of its own lease does not let them expire.
// It extends them once per handler: a handler that ignores its ctx and
// runs on past its deadline must not hold them for ever, so they may then
// expire and go to other consumers. One timer serves the whole batch.
type leaseKeeper struct {
	c    *Consumer
	ctx  context.Context
	msgs []message // the batch
	from int       // the first waiting message while armed
	t    *time.Timer
	wg   sync.WaitGroup
	errs int // failed extensions
}

func (k *leaseKeeper) fire() {
	defer k.wg.Done()
	if err := k.c.extendLeases(k.ctx, k.msgs[k.from:]); err != nil {
		k.errs++
	}
}

// arm starts the timer while the handler of msgs[i] runs, whose ctx ends
// at deadline: it fires when the waiting messages msgs[i+1:] have half of
// their lease left, if that is before deadline (otherwise the main loop
// sees to them once the handler returns). It reports whether it armed.
// Until stop, msgs[i+1:] belong to the timer.
func (k *leaseKeeper) arm(i int, now, deadline time.Time) bool {
	end, ok := waitingEnd(k.msgs[i+1:])
	if !ok || !now.Before(end) {
		return false
	}
	at := end.Add(-k.c.cfg.VisibilityTimeout / 2)
	if !at.Before(deadline) {
		return false
	}
	k.from = i + 1
	k.wg.Add(1)
	if k.t == nil {
		k.t = time.AfterFunc(at.Sub(now), k.fire)
	} else {
		k.t.Reset(at.Sub(now))
	}
	return true
}

// stop disarms the timer, or waits for its extension to end.
func (k *leaseKeeper) stop() {
	if k.t.Stop() {
		k.wg.Done()
		return
	}
	k.wg.Wait()
}
