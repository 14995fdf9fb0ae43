package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/internal/jsonscan"
	"github.com/stepevents/stepevents/internal/pgmissing"
)

// ackTimeout bounds acknowledging, releasing or dead-lettering a message
// after the caller's ctx was cancelled: the handler's work is done and
// should not be redone for want of one short statement.
const ackTimeout = 5 * time.Second

// Consumer reads one namespace queue and hands each event to a handler (see
// the package documentation for the guarantees). It is safe for concurrent
// use: several goroutines or processes may consume the same queue, and
// never get the same visible message at once.
type Consumer struct {
	pool    *pgxpool.Pool
	cfg     Config
	queue   string
	queries *db.Queries
	stats   stats
	// now reads the local clock (time.Now; tests skew it). Leases are
	// timed on it alone, never against the database's clock.
	now func() time.Time
}

// New returns a Consumer of cfg.Namespace's queue on pool. It fails on an
// invalid namespace or negative settings; a queue that does not exist is
// reported by the first read (wrapping events.ErrQueueMissing, or
// events.ErrNotMigrated where pgmq is not installed), and ends Run.
func New(pool *pgxpool.Pool, cfg Config) (*Consumer, error) {
	if pool == nil {
		return nil, fmt.Errorf("stepevents consumer: pool is required: %w", events.ErrInvalidInput)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Consumer{pool: pool, cfg: cfg, queue: cfg.Namespace + QueueSuffix, queries: db.New(),
		now: time.Now}, nil
}

// Queue is the pgmq queue the consumer reads.
func (c *Consumer) Queue() string { return c.queue }

// DeadLetterQueue is the pgmq queue failed messages are moved to.
func (c *Consumer) DeadLetterQueue() string { return c.queue + DeadLetterSuffix }

// Config returns the consumer's settings, defaults filled in.
func (c *Consumer) Config() Config { return c.cfg }

// Stats returns the consumer's totals so far.
func (c *Consumer) Stats() Stats { return c.stats.snapshot() }

// Run consumes until ctx is cancelled, then returns nil: the handler call in
// progress gets the cancelled ctx, and the batch's messages not yet handled
// are made visible again at once, but for those whose lease has run out
// (another consumer may hold them; they are counted Expired). It reads
// again at once after a full batch and waits PollInterval otherwise, or
// after a database error (which it logs and retries). It returns an error
// only for a nil handler or a missing queue.
func (c *Consumer) Run(ctx context.Context, handler HandlerFunc) error {
	if handler == nil {
		return fmt.Errorf("stepevents consumer: Run with a nil handler: %w", events.ErrInvalidInput)
	}
	c.cfg.Logger.Info("stepevents consumer: consuming", slog.String("queue", c.queue),
		slog.Duration("visibility_timeout", c.cfg.VisibilityTimeout), slog.Int("max_reads", c.cfg.MaxReads))
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		res, err := c.ProcessOnce(ctx, handler)
		if ctx.Err() != nil {
			return nil
		}
		wait := time.Duration(0)
		switch {
		case errors.Is(err, events.ErrQueueMissing), errors.Is(err, events.ErrNotMigrated):
			return err
		case err != nil:
			c.cfg.Logger.Error("stepevents consumer: error consuming; retrying", slog.String("queue", c.queue),
				slog.String("err", err.Error()), slog.Duration("retry_in", c.cfg.PollInterval))
			wait = c.cfg.PollInterval
		case res.Read < c.cfg.BatchSize:
			wait = c.cfg.PollInterval
		}
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
		}
	}
}

// message is one row of pgmq.read.
type message struct {
	Delivery
	event events.Event
	// leaseEnd is when the message's lease runs out on the local clock:
	// the visibility timeout after the local time taken just before the
	// read, or just before the last statement that extended the lease
	// (see lease.go), so never later than the database's vt. It carries
	// the monotonic reading of that time, so it is immune to wall-clock
	// steps too. It is zero once the lease is lost (the message is gone or
	// another consumer read it).
	leaseEnd time.Time
}

// held reports that the consumer still holds m's lease at now (false once
// the lease ran out or was lost).
func (m *message) held(now time.Time) bool { return now.Before(m.leaseEnd) }

// ProcessOnce reads one batch (up to BatchSize visible messages) and handles
// it message by message. The messages whose handler succeeded (or reported a
// duplicate) are acknowledged together, in one statement, once the batch is
// handled, or earlier if half of their lease (the visibility timeout from
// just before the read, on the local clock) has passed. The leases of the
// messages still waiting for their turn are extended (one statement for
// all of them) while an earlier handler runs, once per handler when they
// have half of their lease left, and before a handler starts when its
// lease would cut its HandlerTimeout short (see Config.HandlerTimeout); a
// batch of quick handlers extends nothing. A message whose lease ran out
// all the same (a handler ignored its ctx past its deadline, an extension
// failed, which is logged and counted in Stats.Errors, or a due
// acknowledgement took that long) is left unhandled and counted Expired.
// It returns what it did; an error means a database statement failed (the
// messages it concerned reappear after the visibility timeout). An empty
// queue is Result{} and no error.
func (c *Consumer) ProcessOnce(ctx context.Context, handler HandlerFunc) (Result, error) {
	return c.ProcessUpTo(ctx, c.cfg.BatchSize, handler)
}

// ProcessUpTo is ProcessOnce reading at most n messages (1 when n < 1), for
// callers that must not take more than they will handle, such as a
// consumer told to stop after a number of events.
func (c *Consumer) ProcessUpTo(ctx context.Context, n int, handler HandlerFunc) (Result, error) {
	if handler == nil {
		return Result{}, fmt.Errorf("stepevents consumer: ProcessOnce with a nil handler: %w", events.ErrInvalidInput)
	}
	msgs, err := c.read(ctx, max(n, 1))
	if err != nil {
		c.stats.add(Result{}, 1)
		return Result{}, err
	}
	res := Result{Read: len(msgs)}
	errs := 0
	var dbErr error
	var acks ackBatch
	due := &dueFlusher{c: c, ctx: ctx, b: &acks, res: &res}
	var keep *leaseKeeper // made when first needed: a batch of one has no waiting message
	// armed and kept say a timer runs beside the current handler. Should a
	// handler leave by runtime.Goexit (a test's require) the timers are
	// stopped all the same, never to act on the batch after we returned.
	var armed, kept bool
	defer func() {
		if kept {
			keep.stop()
		}
		if armed {
			_ = due.stop()
		}
	}()
	for i := range msgs {
		if ctx.Err() != nil || dbErr != nil {
			// Stopping, or the database failed: give the rest back unhandled.
			if dbErr == nil {
				released, expired, err := c.release(ctx, msgs[i:])
				res.Released += released
				res.Expired += expired
				res.Failed += len(msgs) - i - released - expired
				if err != nil {
					errs++
					dbErr = err
				}
			} else {
				res.Failed += len(msgs) - i
			}
			break
		}
		now := c.now()
		if acks.due(now, c.cfg.VisibilityTimeout) {
			if err := c.flush(ctx, &acks, &res); err != nil {
				errs++
				dbErr = err
				res.Failed += len(msgs) - i
				break
			}
			now = c.now() // the flush may have taken up to ackTimeout
		}
		if c.leaseShort(&msgs[i], now) {
			// Earlier handlers used much of its lease: renew it, and the
			// leases of the messages after it, before its handler starts.
			if err := c.extendLeases(ctx, msgs[i:]); err != nil {
				errs++ // not fatal: the messages just keep their lease
			}
			now = c.now()
		}
		if !msgs[i].held(now) {
			// Its lease ran out before its turn (or was lost): another
			// consumer may hold it now. Leave it.
			res.Expired++
			continue
		}
		// A slow handler must not hold the pending acknowledgements past
		// their lease, nor let the waiting messages' leases run out: a
		// timer beside it flushes the first once due and extends the
		// second once (see leaseKeeper).
		armed, kept = due.arm(), false
		if i+1 < len(msgs) {
			if keep == nil {
				keep = &leaseKeeper{c: c, ctx: ctx, msgs: msgs}
			}
			kept = keep.arm(i, now, now.Add(min(c.cfg.HandlerTimeout, msgs[i].leaseEnd.Sub(now))))
		}
		out, ack, err := c.process(ctx, handler, &msgs[i])
		if kept {
			kept = false
			keep.stop()
		}
		if armed {
			armed = false
			if ferr := due.stop(); ferr != nil && err == nil {
				err = ferr
			}
		}
		res.add(out)
		if ack {
			acks.add(&msgs[i], out)
		}
		if err != nil {
			errs++
			dbErr = err
		}
	}
	if err := c.flush(ctx, &acks, &res); err != nil {
		errs++
		if dbErr == nil {
			dbErr = err
		}
	}
	if keep != nil {
		errs += keep.errs
	}
	c.stats.add(res, errs)
	return res, dbErr
}

// read takes up to n visible messages, hiding them for the visibility
// timeout and counting a read on each. Their lease is timed from the local
// time taken before the statement is sent, plus the visibility timeout:
// the database starts its own count (vt) later, so the local lease ends
// first, whatever the skew between the two clocks.
func (c *Consumer) read(ctx context.Context, n int) ([]message, error) {
	leaseEnd := c.now().Add(c.cfg.VisibilityTimeout)
	rows, err := c.pool.Query(ctx,
		`SELECT msg_id, read_ct, enqueued_at, vt, message, headers FROM pgmq.read($1::text, $2::integer, $3::integer)`,
		c.queue, int(c.cfg.VisibilityTimeout/time.Second), n)
	if err != nil {
		return nil, c.readError(err)
	}
	defer rows.Close()
	var out []message
	for rows.Next() {
		m := message{Delivery: Delivery{Queue: c.queue}, leaseEnd: leaseEnd}
		// []byte, not json.RawMessage: pgx would run json.Unmarshal over
		// the body just to copy it, and decode parses it anyway.
		var body, hdr []byte
		if err := rows.Scan(&m.MsgID, &m.ReadCount, &m.EnqueuedAt, &m.VisibleAt, &body, &hdr); err != nil {
			return nil, fmt.Errorf("stepevents consumer: error reading queue %q: %w", c.queue, err)
		}
		m.Message = body
		m.Headers = decodeHeaders(hdr)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, c.readError(err)
	}
	return out, nil
}

// decodeHeaders decodes a message's headers (jsonb text, so valid JSON)
// with string values taken as they are: json.Unmarshal into a map cost as
// much as decoding the event. Headers are informational: a non-object is
// ignored.
func decodeHeaders(hdr []byte) map[string]any {
	if len(hdr) == 0 || jsonscan.IsNull(hdr) {
		return nil
	}
	h := make(map[string]any, 2)
	err := jsonscan.ObjectFields(hdr, func(k, v []byte) error {
		if len(v) > 0 && v[0] == '"' {
			var s string
			if err := jsonscan.String(v, &s); err != nil {
				return err
			}
			h[string(k)] = s
			return nil
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return err
		}
		h[string(k)] = x
		return nil
	})
	if err != nil {
		return nil
	}
	return h
}

func (c *Consumer) readError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgmissing.Of(pgErr) {
		case pgmissing.Queue:
			return fmt.Errorf("stepevents consumer: queue %q does not exist; apply a template of namespace %q first: %w",
				c.queue, c.cfg.Namespace, events.ErrQueueMissing)
		case pgmissing.PgmqSchema, pgmissing.PgmqFunction:
			// pgmq is not installed, or too old.
			return fmt.Errorf("stepevents consumer: reading queue %q: %s (%s): %w",
				c.queue, pgErr.Message, pgmissing.PgmqHint, events.ErrNotMigrated)
		}
	}
	return fmt.Errorf("stepevents consumer: error reading queue %q: %w", c.queue, err)
}

// process handles one message and settles it: left to reappear, released
// or dead-lettered, or (ack true) to be acknowledged with its batch. The
// error is a database error.
func (c *Consumer) process(ctx context.Context, handler HandlerFunc, m *message) (res Result, ack bool, err error) {
	if m.ReadCount > c.cfg.MaxReads {
		res, err = c.deadLetter(ctx, m, fmt.Sprintf(
			"read %d times (max reads %d) without an answer: earlier consumers crashed, timed out or lost their connection",
			m.ReadCount, c.cfg.MaxReads))
		return res, false, err
	}
	if err := decode(m); err != nil {
		res, err = c.deadLetter(ctx, m, err.Error())
		return res, false, err
	}
	herr := c.call(ctx, handler, m)
	switch {
	case errors.Is(herr, errLeaseEnded):
		return Result{Expired: 1}, false, nil
	case herr == nil:
		return Result{Handled: 1}, true, nil
	case errors.Is(herr, ErrDuplicate):
		return Result{Duplicates: 1}, true, nil
	case errors.Is(herr, ErrPermanent):
		res, err = c.deadLetter(ctx, m, herr.Error())
		return res, false, err
	case ctx.Err() != nil:
		released, expired, err := c.release(ctx, []message{*m})
		return Result{Released: released, Expired: expired, Failed: 1 - released - expired}, false, err
	case m.ReadCount >= c.cfg.MaxReads:
		res, err = c.deadLetter(ctx, m, herr.Error())
		return res, false, err
	default:
		c.cfg.Logger.Warn("stepevents consumer: handler failed; the message reappears after the visibility timeout",
			c.attrs(m, slog.String("err", herr.Error()), slog.Duration("retry_in", m.leaseEnd.Sub(c.now())))...)
		return Result{Failed: 1}, false, nil
	}
}

// decode parses the message as an event; a message that is not one can
// never be handled, so it is dead-lettered at once.
func decode(m *message) error {
	// The body is jsonb text, valid JSON by construction: the single-pass
	// decoder is safe here and a quarter of json.Unmarshal's CPU.
	ev, err := events.DecodeStoredEvent(m.Message)
	if err != nil {
		return fmt.Errorf("malformed event: %v", err)
	}
	m.event = ev
	if m.event.EventName == "" || m.event.EventID == uuid.Nil {
		return errors.New("malformed event: event_name or event_id missing")
	}
	return nil
}

// errLeaseEnded is call's answer when the message's lease has already run
// out: the handler is not run, and the message is counted Expired.
var errLeaseEnded = errors.New("lease ended before the handler started")

// call runs the handler with the handler timeout, turning a panic into an
// error so one bad event cannot kill the consumer.
func (c *Consumer) call(ctx context.Context, handler HandlerFunc, m *message) (err error) {
	// The handler never outlives the message's lease: past it another
	// consumer may be handling it too.
	timeout := min(c.cfg.HandlerTimeout, m.leaseEnd.Sub(c.now()))
	if timeout <= 0 {
		return errLeaseEnded
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			err = panicError(v)
			c.cfg.Logger.Error("stepevents consumer: handler panicked",
				c.attrs(m, slog.Any("panic", v), slog.String("stack", string(debug.Stack())))...)
		}
	}()
	return handler(hctx, m.event, m.Delivery)
}

// release makes messages visible again at once (vt = now), those still
// leased to the consumer: one whose local lease has ended is left alone,
// since another consumer may hold it now and making it visible would let a
// third take it too. It returns how many it released and how many it left
// because their lease had ended; on an error, the messages after the one
// that failed are in neither count.
func (c *Consumer) release(ctx context.Context, msgs []message) (released, expired int, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	for _, m := range msgs {
		if !m.held(c.now()) {
			expired++
			continue
		}
		tag, err := c.pool.Exec(ctx, `SELECT pgmq.set_vt($1::text, $2::bigint, 0::integer)`, c.queue, m.MsgID)
		if err != nil {
			return released, expired, fmt.Errorf("stepevents consumer: error releasing message %d of %q: %w", m.MsgID, c.queue, err)
		}
		if tag.RowsAffected() > 0 {
			released++
		}
	}
	return released, expired, nil
}

func (c *Consumer) attrs(m *message, extra ...any) []any {
	return append([]any{slog.String("queue", c.queue), slog.Int64("msg_id", m.MsgID),
		slog.Int("read_ct", m.ReadCount), slog.String("event_name", m.event.EventName),
		slog.String("event_id", m.event.EventID.String())}, extra...)
}
