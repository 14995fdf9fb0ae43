package consumer

import (
	"context"
	"fmt"
	"time"
)

// ackBatch holds the handled messages of a batch that are still to be
// acknowledged. Acknowledging them together costs one statement and one
// commit instead of one per message: the per-message commit (a WAL flush
// each) was most of what the consumer cost (see BENCHMARKS.md).
type ackBatch struct {
	msgs    []*message
	results []Result
}

func (b *ackBatch) add(m *message, r Result) {
	b.msgs = append(b.msgs, m)
	b.results = append(b.results, r)
}

// due reports that a pending message has less than half of its visibility
// timeout vt left: acknowledged later, it could reappear to another
// consumer and be handled twice.
func (b *ackBatch) due(vt time.Duration) bool {
	return len(b.msgs) > 0 && time.Until(b.dueAt(vt)) <= 0
}

// dueAt is when the first pending message has half of its lease left.
func (b *ackBatch) dueAt(vt time.Duration) time.Time {
	var at time.Time
	for i, m := range b.msgs {
		if t := m.VisibleAt.Add(-vt / 2); i == 0 || t.Before(at) {
			at = t
		}
	}
	return at
}

// flushWhenDue arms a timer that flushes the pending acknowledgements when
// they fall due while a handler runs, so one slow handler cannot let the
// batch's handled messages reappear. The returned stop disarms it, or waits
// for a flush in progress, and returns that flush's error; after stop, b
// and res belong to the caller again.
func (c *Consumer) flushWhenDue(ctx context.Context, b *ackBatch, res *Result) (stop func() error) {
	if len(b.msgs) == 0 {
		return func() error { return nil }
	}
	done := make(chan struct{})
	var err error
	t := time.AfterFunc(time.Until(b.dueAt(c.cfg.VisibilityTimeout)), func() {
		defer close(done)
		err = c.flush(ctx, b, res)
	})
	return func() error {
		if t.Stop() {
			return nil
		}
		<-done
		return err
	}
}

// flush deletes (or archives) the pending messages in one statement. When
// it fails, their counts move from Handled/Duplicates to Failed: they
// reappear after the visibility timeout and are handled again, which
// at-least-once allows. A message already gone was acknowledged by a
// consumer that read it after our lease ran out.
func (c *Consumer) flush(ctx context.Context, b *ackBatch, res *Result) error {
	if len(b.msgs) == 0 {
		return nil
	}
	msgs, results := b.msgs, b.results
	*b = ackBatch{}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.MsgID
	}
	fn, verb := "pgmq.delete", "deleting"
	if c.cfg.Archive {
		fn, verb = "pgmq.archive", "archiving"
	}
	rows, err := c.pool.Query(ctx, `SELECT `+fn+`($1::text, $2::bigint[])`, c.queue, ids)
	done := make(map[int64]bool, len(ids))
	if err == nil {
		for rows.Next() {
			var id int64
			if err = rows.Scan(&id); err != nil {
				break
			}
			done[id] = true
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		for _, r := range results {
			res.Handled -= r.Handled
			res.Duplicates -= r.Duplicates
			res.Failed++
		}
		return fmt.Errorf("stepevents consumer: error %s messages %v of %q: %w", verb, ids, c.queue, err)
	}
	for _, m := range msgs {
		if !done[m.MsgID] {
			c.cfg.Logger.Warn("stepevents consumer: message already acknowledged by another consumer (handler outlived the visibility timeout)",
				c.attrs(m)...)
		}
	}
	return nil
}
