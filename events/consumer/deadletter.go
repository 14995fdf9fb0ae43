package consumer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/stepevents/stepevents/db"
)

// Headers the dead-letter move adds to the message's own headers, so the
// DLQ can be inspected (and replayed) with plain SQL:
//
//	SELECT msg_id, headers->>'x-dlq-reason', message->>'event_name'
//	FROM pgmq.q_{namespace}_domain_events_dlq;
const (
	// HeaderDLQReason is the last handler error (or why no handler ran).
	HeaderDLQReason = "x-dlq-reason"
	// HeaderDLQSourceQueue is the queue the message was read from.
	HeaderDLQSourceQueue = "x-dlq-source-queue"
	// HeaderDLQReadCount is the message's read_ct when it was moved.
	HeaderDLQReadCount = "x-dlq-read-count"
	// HeaderDLQMsgID is the message's msg_id in the source queue.
	HeaderDLQMsgID = "x-dlq-msg-id"
	// HeaderDLQDeadLetteredAt is when it was moved.
	HeaderDLQDeadLetteredAt = "x-dlq-dead-lettered-at"
)

// deadLetter moves the message to the dead-letter queue with reason: the
// send and the delete run in one statement, so one transaction
// (stepevents.dead_letter). A message read again by another consumer
// since (or already gone) is left alone and counted as failed.
func (c *Consumer) deadLetter(ctx context.Context, m *message, reason string) (Result, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	dlqID, err := c.queries.DeadLetterMessage(ctx, c.pool, db.DeadLetterMessageParams{
		Queue: c.queue, MsgID: m.MsgID, ReadCt: int32(m.ReadCount), Reason: reason})
	if err != nil {
		return Result{Failed: 1}, fmt.Errorf("stepevents consumer: error moving message %d of %q to %q: %w",
			m.MsgID, c.queue, c.DeadLetterQueue(), err)
	}
	if dlqID == 0 {
		c.cfg.Logger.Warn("stepevents consumer: message not dead-lettered: another consumer read it since, or it is gone",
			c.attrs(m, slog.String("reason", reason))...)
		return Result{Failed: 1}, nil
	}
	c.cfg.Logger.Error("stepevents consumer: message dead-lettered",
		c.attrs(m, slog.String("reason", reason), slog.String("dlq", c.DeadLetterQueue()), slog.Int64("dlq_msg_id", dlqID))...)
	return Result{DeadLettered: 1}, nil
}
