package consumer

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

// Defaults for a zero Config field.
const (
	// DefaultVisibilityTimeout is how long a read message stays hidden from
	// other consumers: long enough for a handler, short enough that a crashed
	// consumer's messages come back soon.
	DefaultVisibilityTimeout = 30 * time.Second
	// DefaultBatchSize is how many messages one read takes.
	DefaultBatchSize = 10
	// DefaultPollInterval is how long Run waits after finding nothing to read.
	DefaultPollInterval = time.Second
	// DefaultMaxReads is how many failed reads a message gets before it is
	// dead-lettered.
	DefaultMaxReads = 5
)

// QueueSuffix and DeadLetterSuffix name a namespace's queues, as created by
// template apply.
const (
	QueueSuffix      = "_domain_events"
	DeadLetterSuffix = "_dlq"
)

// Config configures a Consumer. Only Namespace is required.
type Config struct {
	// Namespace is the template namespace whose queue
	// ({namespace}_domain_events) is read.
	Namespace string
	// VisibilityTimeout hides a read message from other consumers (its
	// lease); a failed message reappears after it. The leases of a batch's
	// messages waiting for their turn are renewed for VisibilityTimeout
	// while earlier handlers run (see HandlerTimeout). pgmq counts it in
	// whole seconds, so it is rounded up (DefaultVisibilityTimeout when 0).
	VisibilityTimeout time.Duration
	// HandlerTimeout bounds one handler call (VisibilityTimeout when 0).
	// The handler's ctx also ends with the message's lease, whichever
	// comes first: VisibilityTimeout after the local time taken just
	// before the read that took the message (its batch), or before the
	// last extension of its lease. The leases of the messages waiting in a
	// batch are extended once while each earlier handler runs, when half
	// of their lease is left; and before a handler starts, if its lease
	// would end before HandlerTimeout and a quarter of the lease has
	// passed, its lease (and the waiting messages') is extended first. So
	// a handler gets its full HandlerTimeout, or at least three quarters
	// of VisibilityTimeout where HandlerTimeout is longer; a HandlerTimeout
	// above VisibilityTimeout acts as VisibilityTimeout. The lease is timed
	// on the local monotonic clock alone, never against the database's vt,
	// so skew between the two clocks does not move it. A handler that
	// ignores its ctx and runs on past the lease races a redelivery, and
	// the waiting messages of its batch, no longer extended, may expire.
	HandlerTimeout time.Duration
	// BatchSize is how many messages one read takes (DefaultBatchSize when 0).
	BatchSize int
	// PollInterval is how long Run waits when the queue had nothing visible
	// or a read failed (DefaultPollInterval when 0).
	PollInterval time.Duration
	// MaxReads is how many times a message may be read and fail before it is
	// moved to the dead-letter queue (DefaultMaxReads when 0).
	MaxReads int
	// Archive moves handled messages to pgmq's archive table
	// (pgmq.a_{queue}) instead of deleting them, for auditing.
	Archive bool
	// Logger receives handler failures, dead-letters and read errors; nil
	// discards them.
	Logger *slog.Logger
}

// withDefaults validates c and fills in its zero fields.
func (c Config) withDefaults() (Config, error) {
	if err := template.ValidNamespace(c.Namespace); err != nil {
		return c, fmt.Errorf("stepevents consumer: %w: %w", err, events.ErrInvalidInput)
	}
	for name, d := range map[string]time.Duration{"VisibilityTimeout": c.VisibilityTimeout,
		"HandlerTimeout": c.HandlerTimeout, "PollInterval": c.PollInterval} {
		if d < 0 {
			return c, fmt.Errorf("stepevents consumer: %s is negative (%s): %w", name, d, events.ErrInvalidInput)
		}
	}
	if c.BatchSize < 0 || c.MaxReads < 0 {
		return c, fmt.Errorf("stepevents consumer: BatchSize (%d) and MaxReads (%d) must not be negative: %w",
			c.BatchSize, c.MaxReads, events.ErrInvalidInput)
	}
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if r := c.VisibilityTimeout % time.Second; r != 0 {
		c.VisibilityTimeout += time.Second - r // round up: pgmq counts whole seconds
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = c.VisibilityTimeout
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MaxReads == 0 {
		c.MaxReads = DefaultMaxReads
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c, nil
}
