// Package events records workflow step results in PostgreSQL and publishes
// the domain events their task templates declare, in the same transaction:
// durable events to a pgmq queue, fast events over NOTIFY, broadcast events
// both ways with one event id.
//
// Methods come in pairs, River style: XTx(ctx, tx, …) runs in the caller's
// pgx.Tx; X(ctx, …) opens, commits and (for fast events) releases itself.
package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepevents/stepevents/db"
)

// DefaultChannel is the NOTIFY channel fast events travel on.
const DefaultChannel = "stepevents_events"

// FastMode says how fast events leave a step-completion transaction.
type FastMode int

const (
	// FastAfterCommit (the default) collects fast events during the
	// transaction and sends them after commit from one notifier connection,
	// coalescing several events per NOTIFY. Step transactions never take
	// PostgreSQL's cluster-wide NOTIFY commit lock. Never delivered for a
	// rolled-back transaction; lost if the process dies between commit and
	// release (fast events are at-most-once in every mode).
	FastAfterCommit FastMode = iota
	// FastInTransaction issues NOTIFY inside the step transaction, so the
	// fast event is delivered exactly when the transaction commits, at the
	// cost of the NOTIFY commit lock on every step commit.
	FastInTransaction
)

// Config configures a Client. The zero value is usable.
type Config struct {
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// Publishers are the custom publishers templates may name.
	Publishers []Publisher
	// FastMode chooses after-commit (default) or in-transaction NOTIFY.
	FastMode FastMode
	// Channel is the NOTIFY channel; DefaultChannel when empty.
	Channel string
	// TolerantPublishers lets a step result commit when a custom publisher
	// fails or emits an invalid event: the problem goes to
	// Completion.Errors and RouterStats.RoutingErrors, and that event is not
	// published. By default such a completion fails (ErrPublisher) and
	// nothing commits, so a committed step never lacks a declared event.
	TolerantPublishers bool
	// SigningKey, when set, signs every fast envelope (HMAC-SHA256) so
	// listeners configured with the same key drop forged notifications.
	SigningKey []byte
}

// Client records step results and publishes their events. It is safe for
// concurrent use.
type Client struct {
	pool       *pgxpool.Pool
	queries    *db.Queries
	logger     *slog.Logger
	mode       FastMode
	channel    string
	signer     *signer
	tolerant   bool
	publishers map[string]Publisher
	stats      *RouterStats
	notifier   *notifier
	decls      sync.Map // template_id -> *templateDecls (templates are immutable per version)
	pending    sync.Map // pgx.Tx -> *fastBatch, for InTx
}

// NewClient returns a Client on pool. It fails when a stored template names
// a publisher that cfg does not register: no silent fallback to the default
// publisher.
func NewClient(ctx context.Context, pool *pgxpool.Pool, cfg *Config) (*Client, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	c := &Client{
		pool:       pool,
		queries:    db.New(),
		logger:     cfg.Logger,
		mode:       cfg.FastMode,
		channel:    cfg.Channel,
		tolerant:   cfg.TolerantPublishers,
		publishers: map[string]Publisher{},
		stats:      &RouterStats{},
	}
	if c.logger == nil {
		c.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.channel == "" {
		c.channel = DefaultChannel
	}
	if err := validChannel(c.channel); err != nil {
		return nil, err
	}
	if len(cfg.SigningKey) > 0 {
		c.signer = newSigner(cfg.SigningKey)
	}
	for _, p := range cfg.Publishers {
		name := p.Name()
		if _, dup := c.publishers[name]; dup {
			return nil, fmt.Errorf("publisher %q registered twice: %w", name, ErrInvalidInput)
		}
		c.publishers[name] = p
	}
	if err := c.CheckPublishers(ctx); err != nil {
		return nil, err
	}
	c.notifier = newNotifier(pool, c.channel, c.signer, c.stats, c.logger)
	return c, nil
}

// CheckPublishers fails when any stored event declaration names a publisher
// this client does not have, listing the missing and the registered ones.
func (c *Client) CheckPublishers(ctx context.Context) error {
	names, err := c.queries.ListDeclaredPublishers(ctx, c.pool)
	if err != nil {
		return mapError(err, "error listing declared publishers")
	}
	return c.checkNames(names)
}

func (c *Client) checkNames(names []string) error {
	var missing []string
	for _, n := range names {
		if _, ok := c.publishers[n]; !ok && !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	registered := make([]string, 0, len(c.publishers))
	for n := range c.publishers {
		registered = append(registered, n)
	}
	slices.Sort(registered)
	return fmt.Errorf("templates name publishers that are not registered: %s (registered: [%s]): %w",
		strings.Join(missing, ", "), strings.Join(registered, ", "), ErrUnknownPublisher)
}

// Stats returns a snapshot of the router counters.
func (c *Client) Stats() RouterStatsSnapshot { return c.stats.Snapshot() }

// Close stops the notifier after sending the fast events already released,
// or when ctx ends. It does not close the pool.
func (c *Client) Close(ctx context.Context) error {
	return c.notifier.close(ctx)
}

// InTx runs fn in a READ COMMITTED transaction (what step operations need,
// whatever the server's default) and commits it; then it releases the fast
// events that CompleteStepTx / FailStepTx collected on that transaction
// (after-commit mode). On error or panic the transaction rolls back and no
// fast event is released.
func (c *Client) InTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	tx, err := c.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("error beginning transaction: %w", err)
	}
	batch := &fastBatch{}
	c.pending.Store(tx, batch)
	defer c.pending.Delete(tx)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("error committing transaction: %w", err)
	}
	c.release(batch.take())
	return nil
}
