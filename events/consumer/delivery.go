package consumer

import (
	"context"
	"encoding/json"
	"time"

	"github.com/stepevents/stepevents/events"
)

// HandlerFunc handles one durable event. Returning nil acknowledges it (the
// message is deleted or archived); an error or a panic leaves it to reappear
// after the visibility timeout, until MaxReads is reached and it is
// dead-lettered. Return ErrDuplicate for an event already handled and a
// Permanent error for one that can never succeed. ctx is cancelled when
// Run's ctx is, after Config.HandlerTimeout, or when the message's lease
// ends, whichever comes first (see Config.HandlerTimeout).
type HandlerFunc func(ctx context.Context, ev events.Event, d Delivery) error

// Delivery is the pgmq side of a message: where it came from and how often
// it has been read, for handlers that log, deduplicate or give up early.
type Delivery struct {
	// Queue is the pgmq queue the message was read from.
	Queue string `json:"queue"`
	// MsgID is the message's pgmq id in Queue.
	MsgID int64 `json:"msg_id"`
	// ReadCount counts the reads of the message, this one included (1 on
	// the first delivery).
	ReadCount int `json:"read_ct"`
	// EnqueuedAt is when the message was sent.
	EnqueuedAt time.Time `json:"enqueued_at"`
	// VisibleAt is when the message becomes visible again if it is not
	// acknowledged (the end of the visibility timeout), on the database's
	// clock: pgmq's vt as the read set it (a later extension of the lease
	// moves it on without updating this field). It is informational; the
	// consumer times the lease on the local clock instead (see
	// Config.HandlerTimeout), and a handler should not compare it with its
	// own clock either.
	VisibleAt time.Time `json:"vt"`
	// Message is the message body as stored (the event's JSON).
	Message json.RawMessage `json:"message"`
	// Headers are the message's pgmq headers (nil when it has none).
	Headers map[string]any `json:"headers,omitempty"`
}

// Result counts what one ProcessOnce did.
type Result struct {
	// Read messages were taken from the queue.
	Read int `json:"read"`
	// Handled messages were acknowledged after the handler returned nil.
	Handled int `json:"handled"`
	// Duplicates were acknowledged because the handler reported ErrDuplicate.
	Duplicates int `json:"duplicates"`
	// Failed messages were left to reappear after the visibility timeout:
	// the handler failed, or a database statement settling them did.
	Failed int `json:"failed"`
	// DeadLettered messages were moved to the dead-letter queue.
	DeadLettered int `json:"dead_lettered"`
	// Released messages were made visible again unhandled, because the
	// consumer was stopping. Their read still counts towards MaxReads. A
	// message whose lease had run out is not released (another consumer
	// may hold it) but counted Expired.
	Released int `json:"released"`
	// Expired messages were left unhandled because their lease ran out
	// (or was lost) before their turn came, although it is extended while
	// earlier messages of the batch are handled: a handler ignored its ctx
	// past its deadline, an extension failed, or settling earlier messages
	// took that long; or the consumer stopped after their lease had run
	// out. Another consumer may hold them already. They
	// reappear without being released, and their read counts towards
	// MaxReads.
	Expired int `json:"expired"`
}

func (r *Result) add(o Result) {
	r.Read += o.Read
	r.Handled += o.Handled
	r.Duplicates += o.Duplicates
	r.Failed += o.Failed
	r.DeadLettered += o.DeadLettered
	r.Released += o.Released
	r.Expired += o.Expired
}
