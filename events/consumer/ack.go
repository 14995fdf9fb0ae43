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
	for _, m := range b.msgs {
		if time.Until(m.VisibleAt) < vt/2 {
			return true
		}
	}
	return false
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
