package events

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxPendingFast bounds the fast copies waiting for the notifier; beyond it
// new ones are dropped and counted as fast delivery errors.
const maxPendingFast = 100_000

// notifier sends released fast events after commit on one dedicated
// connection. Everything pending when it wakes goes out in one statement —
// one NOTIFY transaction, so one pass through PostgreSQL's notify commit lock
// for many step completions — packed several events per NOTIFY.
type notifier struct {
	pool    *pgxpool.Pool
	channel string
	signer  *signer
	stats   *RouterStats
	logger  *slog.Logger

	mu      sync.Mutex
	pending []fastItem
	closed  bool

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	conn *pgx.Conn // owned by the run goroutine
}

func newNotifier(pool *pgxpool.Pool, channel string, s *signer, stats *RouterStats, logger *slog.Logger) *notifier {
	n := &notifier{pool: pool, channel: channel, signer: s, stats: stats, logger: logger,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go n.run()
	return n
}

// enqueue hands fast copies to the notifier without waiting.
func (n *notifier) enqueue(items []fastItem) {
	if len(items) == 0 {
		return
	}
	n.mu.Lock()
	if n.closed || len(n.pending)+len(items) > maxPendingFast {
		closed := n.closed
		n.mu.Unlock()
		n.stats.fastDeliveryErrors.Add(uint64(len(items)))
		n.logger.Warn("stepevents notifier: fast events dropped", slog.Int("count", len(items)), slog.Bool("closed", closed))
		return
	}
	n.pending = append(n.pending, items...)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	defer close(n.done)
	defer func() {
		if n.conn != nil {
			_ = n.conn.Close(context.Background())
		}
	}()
	for {
		select {
		case <-n.wake:
			n.flush()
		case <-n.stop:
			n.flush()
			return
		}
	}
}

func (n *notifier) flush() {
	for {
		n.mu.Lock()
		items := n.pending
		n.pending = nil
		n.mu.Unlock()
		if len(items) == 0 {
			return
		}
		if err := n.send(items); err != nil {
			n.stats.fastDeliveryErrors.Add(uint64(len(items)))
			n.logger.Error("stepevents notifier: error sending fast events",
				slog.Int("count", len(items)), slog.String("err", err.Error()))
			if n.conn != nil {
				_ = n.conn.Close(context.Background())
				n.conn = nil
			}
			continue
		}
		n.stats.fastNotified.Add(uint64(len(items)))
	}
}

func (n *notifier) send(items []fastItem) error {
	payloads, err := packEnvelopes(items, n.signer)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n.conn == nil || n.conn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, n.pool.Config().ConnConfig.Copy())
		if err != nil {
			return fmt.Errorf("error connecting the notifier: %w", err)
		}
		n.conn = conn
	}
	if _, err := n.conn.Exec(ctx, `SELECT pg_notify($1::text, p) FROM unnest($2::text[]) AS p`, n.channel, payloads); err != nil {
		return fmt.Errorf("error notifying %q: %w", n.channel, err)
	}
	return nil
}

// close sends what is pending and stops, or gives up when ctx ends.
func (n *notifier) close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		select {
		case <-n.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("error closing the notifier: %w", ctx.Err())
		}
	}
	n.closed = true
	n.mu.Unlock()
	close(n.stop)
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("error closing the notifier: %w", ctx.Err())
	}
}
