package consumer

import (
	"context"
	"fmt"
	"sync"
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

// due reports that at now a pending message has less than half of its
// visibility timeout vt left: acknowledged later, it could reappear to
// another consumer and be handled twice.
func (b *ackBatch) due(now time.Time, vt time.Duration) bool {
	return len(b.msgs) > 0 && !now.Before(b.dueAt(vt))
}

// dueAt is when, on the local clock, the first pending message has half
// of its lease left.
func (b *ackBatch) dueAt(vt time.Duration) time.Time {
	var at time.Time
	for i, m := range b.msgs {
		if t := m.leaseEnd.Add(-vt / 2); i == 0 || t.Before(at) {
			at = t
		}
	}
	return at
}

// dueFlusher flushes a batch's pending acknowledgements from a timer when
// they fall due while a handler runs, so one slow handler cannot let the
// batch's handled messages reappear. One timer serves the whole batch.
type dueFlusher struct {
	c   *Consumer
	ctx context.Context
	b   *ackBatch
	res *Result
	t   *time.Timer
	wg  sync.WaitGroup
	err error
}

func (f *dueFlusher) fire() {
	defer f.wg.Done()
	f.err = f.c.flush(f.ctx, f.b, f.res)
}

// arm starts the timer for the pending acknowledgements' due time, if
// there are any; it reports whether it did. Until stop, b and res belong
// to the timer.
func (f *dueFlusher) arm() bool {
	if len(f.b.msgs) == 0 {
		return false
	}
	f.wg.Add(1)
	d := f.b.dueAt(f.c.cfg.VisibilityTimeout).Sub(f.c.now())
	if f.t == nil {
		f.t = time.AfterFunc(d, f.fire)
	} else {
		f.t.Reset(d)
	}
	return true
}

// stop disarms the timer, or waits for its flush, and returns that
// flush's error.
func (f *dueFlusher) stop() error {
	if f.t.Stop() {
		f.wg.Done()
		return nil
	}
	f.wg.Wait()
	err := f.err
	f.err = nil
	return err
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
