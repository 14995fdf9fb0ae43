package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgxlisten"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events/template"
)

// Listener defaults.
const (
	// DefaultReconnectDelay is the first reconnect delay (jittered down to
	// half); it doubles per consecutive failure up to DefaultMaxReconnectDelay.
	DefaultReconnectDelay = 100 * time.Millisecond
	// DefaultMaxReconnectDelay caps the reconnect backoff.
	DefaultMaxReconnectDelay = 5 * time.Second
	// DefaultConnectTimeout bounds one connection attempt.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultResolveTimeout bounds fetching stashed (oversized) events.
	DefaultResolveTimeout = 5 * time.Second
	// DefaultPendingEnvelopes bounds the envelopes decoded but not yet
	// handed to the bus; beyond it new ones are dropped, counted and
	// reported to subscribers as a GapOverflow.
	DefaultPendingEnvelopes = 4096
)

// ListenerConfig configures a Listener. The zero value is usable.
type ListenerConfig struct {
	// Channel is the NOTIFY channel; DefaultChannel when empty. It must be
	// the publishing Client's Config.Channel.
	Channel string
	// SigningKey, when set, drops every envelope that is unsigned or not
	// signed with this key (counted as DroppedForged). NOTIFY has no access
	// control, so without a key anyone who can connect can inject events.
	SigningKey []byte
	// Logger receives connection and drop logs; nil discards them.
	Logger *slog.Logger
	// ConnConfig, when set, is used instead of the pool's connection config:
	// LISTEN needs a direct session, so behind a transaction-mode pooler
	// point it at the server itself.
	ConnConfig *pgx.ConnConfig
	// ReconnectDelay is the first reconnect delay (DefaultReconnectDelay
	// when 0); MaxReconnectDelay caps the backoff (DefaultMaxReconnectDelay).
	ReconnectDelay    time.Duration
	MaxReconnectDelay time.Duration
	// ConnectTimeout bounds each connection attempt (DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// ResolveTimeout bounds fetching stashed events (DefaultResolveTimeout).
	ResolveTimeout time.Duration
	// PendingEnvelopes bounds the hand-off from the read loop to the bus
	// (DefaultPendingEnvelopes). Envelopes beyond it are dropped, and
	// subscribers get a GapOverflow where they were lost.
	PendingEnvelopes int
}

// Listener receives fast events over LISTEN and publishes them on a Bus.
//
// It holds one dedicated connection, opened fresh (never taken from the
// pool) on every connect, and never runs a query on it: notifications are
// only delivered between transactions, and the server's notification queue
// — shared by the whole cluster — cannot advance past a listener that stops
// reading. Its read loop therefore only decodes envelopes and hands them
// off; events go to the bus, and oversized events are fetched from
// stepevents.fast_event_stash through the pool, on another goroutine.
//
// Fast events are at-most-once: whatever is notified while the connection
// is down is lost. The Listener publishes a GapSignal on the bus wherever it
// knows events were lost, so subscribers can re-read state: after every
// reconnect (GapReconnect), in place of notifications it dropped because
// the dispatcher was PendingEnvelopes behind (GapOverflow), and in place of
// stashed events it could not fetch (GapUnresolved). Each gap reaches the
// bus after the events received before the loss and before those received
// after it.
type Listener struct {
	pool       *pgxpool.Pool
	bus        *Bus
	channel    string
	key        []byte
	logger     *slog.Logger
	connConfig *pgx.ConnConfig
	cfg        ListenerConfig
	queries    *db.Queries
	handoff    chan handoffItem

	// hmu orders the read loop's hand-offs against the dispatcher taking
	// the gaps left pending. pendingGaps are gaps the read loop could not
	// hand off (the hand-off was full), oldest first; the last may be an
	// overflow still counting drops. They go before the next envelope handed
	// off or, once the dispatcher has emptied the hand-off, straight to the
	// bus: either way after everything received before them.
	hmu         sync.Mutex
	pendingGaps []GapSignal

	mu      sync.Mutex // guards started, cancel, done
	started bool
	cancel  context.CancelFunc
	done    chan struct{}

	live     chan struct{} // closed at the first active LISTEN
	isLive   atomic.Bool
	startErr chan error

	// Owned by the pgxlisten goroutine (Connect, LogError and the handler
	// methods all run on it).
	attempts, failures int

	stateMu        sync.Mutex
	connectedSince time.Time
	disconnectedAt time.Time
	lastErr        string

	connected atomic.Bool
	pid       atomic.Uint32

	received, decoded, droppedMalformed, droppedForged, droppedOverflow atomic.Uint64
	published, refsResolved, refErrors, reconnects                      atomic.Uint64
}

// handoffItem is what the read loop passes to the dispatcher: an envelope,
// or a gap signal (so it reaches the bus after the events received before it).
type handoffItem struct {
	env Envelope
	gap *GapSignal
}

// NewListener returns a Listener for pool that publishes on bus. It fails
// on an invalid channel name. Call Start, then Stop.
func NewListener(pool *pgxpool.Pool, bus *Bus, cfg ListenerConfig) (*Listener, error) {
	if pool == nil || bus == nil {
		return nil, fmt.Errorf("stepevents listener: pool and bus are required: %w", ErrInvalidInput)
	}
	l := &Listener{pool: pool, bus: bus, channel: cfg.Channel, logger: cfg.Logger, connConfig: cfg.ConnConfig,
		queries: db.New(), live: make(chan struct{}), startErr: make(chan error, 1)}
	if l.channel == "" {
		l.channel = DefaultChannel
	}
	if err := validChannel(l.channel); err != nil {
		return nil, fmt.Errorf("stepevents listener: %w", err)
	}
	if len(cfg.SigningKey) > 0 {
		l.key = append([]byte(nil), cfg.SigningKey...)
	}
	if l.logger == nil {
		l.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if l.connConfig == nil {
		l.connConfig = pool.Config().ConnConfig
	}
	setDefault(&cfg.ReconnectDelay, DefaultReconnectDelay)
	setDefault(&cfg.MaxReconnectDelay, DefaultMaxReconnectDelay)
	setDefault(&cfg.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&cfg.ResolveTimeout, DefaultResolveTimeout)
	if cfg.PendingEnvelopes <= 0 {
		cfg.PendingEnvelopes = DefaultPendingEnvelopes
	}
	cfg.MaxReconnectDelay = max(cfg.MaxReconnectDelay, cfg.ReconnectDelay)
	l.cfg = cfg
	l.handoff = make(chan handoffItem, cfg.PendingEnvelopes)
	return l, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Start connects and returns once LISTEN is active, so a fast event
// committed after Start returns reaches the bus. If the first connection or
// LISTEN fails it returns that error (wrapped) instead of retrying forever;
// later failures are retried with jittered exponential backoff. ctx bounds
// only the start: the Listener runs until Stop. A Listener starts once.
func (l *Listener) Start(ctx context.Context) error {
	l.mu.Lock()
	if l.started {
		l.mu.Unlock()
		return fmt.Errorf("stepevents listener: Start called twice: %w", ErrInvalidInput)
	}
	l.started = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel, l.done = cancel, make(chan struct{})
	l.mu.Unlock()

	pl := &pgxlisten.Listener{
		Connect:  l.connect,
		LogError: l.logError,
		// The backoff lives in connect: a negative delay makes pgxlisten call
		// it again at once, and connect sleeps before every retry. pgxlisten's
		// own delay is fixed (1 minute by default), without backoff or jitter.
		ReconnectDelay: -1,
	}
	pl.Handle(l.channel, listenHandler{l})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = pl.Listen(runCtx) // returns only once runCtx is cancelled
	}()
	go func() {
		defer wg.Done()
		l.dispatchLoop(runCtx)
	}()
	go func() {
		wg.Wait()
		close(l.done)
	}()

	select {
	case <-l.live:
		l.logger.Info("stepevents listener: listening", slog.String("channel", l.channel),
			slog.Uint64("backend_pid", uint64(l.pid.Load())))
		return nil
	case err := <-l.startErr:
		cancel()
		<-l.done
		return fmt.Errorf("stepevents listener: error starting LISTEN on %q: %w", l.channel, err)
	case <-ctx.Done():
		cancel()
		<-l.done
		return fmt.Errorf("stepevents listener: start on %q interrupted: %w", l.channel, ctx.Err())
	}
}

// Stop closes the connection and stops the goroutines; envelopes not yet
// handed to the bus are dropped. It waits until they have exited (a Publish
// waiting on a Block subscriber finishes first) or ctx ends. It does not
// close the bus: stop the listener, then close the bus. Stop is idempotent.
func (l *Listener) Stop(ctx context.Context) error {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		l.connected.Store(false)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stepevents listener: stopping on %q: %w", l.channel, ctx.Err())
	}
}

// Close is Stop without a deadline.
func (l *Listener) Close() error { return l.Stop(context.Background()) }

// connect opens a fresh dedicated connection: pgxlisten closes it when the
// session ends, so returning a reused connection would break every
// reconnect (hatchet-dev/hatchet#2771). Every attempt but the first waits a
// jittered, exponentially growing delay.
func (l *Listener) connect(ctx context.Context) (*pgx.Conn, error) {
	l.connected.Store(false)
	if l.attempts > 0 {
		t := time.NewTimer(l.backoff(l.failures))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	l.attempts++
	l.failures++ // reset once LISTEN is active
	cctx, cancel := context.WithTimeout(ctx, l.cfg.ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, l.connConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("opening the dedicated LISTEN connection: %w", err)
	}
	return conn, nil
}

// backoff returns the delay before retry n (n >= 1): ReconnectDelay doubled
// per further failure, capped at MaxReconnectDelay, jittered to [d/2, d].
func (l *Listener) backoff(n int) time.Duration {
	d := l.cfg.ReconnectDelay
	for i := 1; i < n && d < l.cfg.MaxReconnectDelay; i++ {
		d *= 2
	}
	d = min(d, l.cfg.MaxReconnectDelay)
	return d/2 + rand.N(d/2+1)
}

func (l *Listener) logError(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // stopping
	}
	l.stateMu.Lock()
	l.lastErr = err.Error()
	if l.connected.Swap(false) {
		l.disconnectedAt = time.Now()
	}
	l.stateMu.Unlock()
	if !l.isLive.Load() {
		select {
		case l.startErr <- err:
		default:
		}
		return
	}
	l.logger.Warn("stepevents listener: connection error, reconnecting", slog.String("channel", l.channel),
		slog.String("err", err.Error()), slog.Int("consecutive_failures", l.failures))
}

// listenHandler adapts the Listener to pgxlisten without exporting its methods.
type listenHandler struct{ l *Listener }

// HandleBacklog runs right after each successful LISTEN: the first time it
// is the readiness signal Start waits for; afterwards it is a reconnect, and
// a gap signal goes to the subscribers. It never uses conn for queries.
func (h listenHandler) HandleBacklog(_ context.Context, _ string, conn *pgx.Conn) error {
	l := h.l
	now := time.Now()
	l.failures = 0
	l.pid.Store(conn.PgConn().PID())
	l.stateMu.Lock()
	l.connectedSince = now
	gap := GapSignal{Kind: GapReconnect, Channel: l.channel, Since: l.disconnectedAt, DisconnectedAt: l.disconnectedAt,
		ReconnectedAt: now, Cause: l.lastErr}
	l.stateMu.Unlock()
	l.connected.Store(true)
	if !l.isLive.Swap(true) {
		close(l.live)
		return nil
	}
	gap.Reconnects = l.reconnects.Add(1)
	l.logger.Info("stepevents listener: reconnected; fast events sent meanwhile are lost",
		slog.String("channel", l.channel), slog.Uint64("reconnects", gap.Reconnects),
		slog.Duration("down_for", now.Sub(gap.DisconnectedAt)))
	l.handOffGap(gap)
	return nil
}

// HandleNotification runs on the read loop, so it never blocks: it checks
// the envelope (and its signature) and queues it for the dispatcher.
func (h listenHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	l := h.l
	l.received.Add(1)
	env, err := DecodeEnvelope([]byte(n.Payload), l.key)
	switch {
	case errors.Is(err, ErrForgedEnvelope), errors.Is(err, ErrUnsignedEnvelope):
		l.drop(&l.droppedForged, "forged or unsigned envelope", n, err)
		return nil
	case err != nil:
		l.drop(&l.droppedMalformed, "malformed envelope", n, err)
		return nil
	}
	l.decoded.Add(1)
	if !l.handOff(env) {
		l.drop(&l.droppedOverflow, "dispatcher behind, envelope", n, nil)
	}
	return nil
}

// handOff queues env for the dispatcher, after any gap still pending. When
// there is no room it drops env, counting it in the overflow gap that will
// take its place, and reports false. It runs on the read loop and never
// blocks.
func (l *Listener) handOff(env Envelope) bool {
	l.hmu.Lock()
	defer l.hmu.Unlock()
	if l.flushGapsLocked() {
		select {
		case l.handoff <- handoffItem{env: env}:
			return true
		default:
		}
	}
	if k := len(l.pendingGaps); k > 0 && l.pendingGaps[k-1].Kind == GapOverflow {
		l.pendingGaps[k-1].Dropped++ // the same run of drops: nothing was handed off since
		return false
	}
	l.pendingGaps = append(l.pendingGaps, GapSignal{Kind: GapOverflow, Channel: l.channel,
		Reconnects: l.reconnects.Load(), Since: time.Now(), Dropped: 1,
		Cause: fmt.Sprintf("the listener was %d notifications behind (ListenerConfig.PendingEnvelopes)", cap(l.handoff))})
	return false
}

// handOffGap queues g for the dispatcher after any gap still pending, or
// keeps it pending when there is no room. It never blocks.
func (l *Listener) handOffGap(g GapSignal) {
	l.hmu.Lock()
	defer l.hmu.Unlock()
	l.pendingGaps = append(l.pendingGaps, g)
	l.flushGapsLocked()
}

// flushGapsLocked hands the pending gaps off, oldest first, while there is
// room, and reports whether none is left. l.hmu is held.
func (l *Listener) flushGapsLocked() bool {
	for len(l.pendingGaps) > 0 {
		g := l.pendingGaps[0]
		select {
		case l.handoff <- handoffItem{gap: &g}:
			l.pendingGaps = l.pendingGaps[1:]
		default:
			return false
		}
	}
	l.pendingGaps = nil
	return true
}

// publishPendingGaps publishes the gaps the read loop could not hand off,
// once the dispatcher has emptied the hand-off: everything received before
// them has then been published, and nothing was handed off after them (the
// read loop hands off pending gaps before any envelope). Without it a gap
// would wait for the next notification. Only the dispatcher calls it.
func (l *Listener) publishPendingGaps() {
	if len(l.handoff) > 0 {
		return // the dispatcher comes back here after the next item
	}
	l.hmu.Lock()
	if len(l.handoff) > 0 || len(l.pendingGaps) == 0 {
		l.hmu.Unlock()
		return
	}
	gaps := l.pendingGaps
	l.pendingGaps = nil
	l.hmu.Unlock()
	for _, g := range gaps {
		l.bus.PublishGap(g)
	}
}

// drop counts a dropped envelope, logging the 1st, 2nd, 4th, 8th… of each
// kind so a flood cannot flood the logs.
func (l *Listener) drop(counter *atomic.Uint64, what string, n *pgconn.Notification, err error) {
	c := counter.Add(1)
	if c&(c-1) != 0 {
		return
	}
	attrs := []any{slog.String("channel", l.channel), slog.Uint64("sender_pid", uint64(n.PID)),
		slog.Int("payload_bytes", len(n.Payload)), slog.Uint64("count", c)}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	l.logger.Warn("stepevents listener: dropped "+what, attrs...)
}

// dispatchLoop hands envelopes and gaps to the bus in arrival order,
// resolving references through the pool.
func (l *Listener) dispatchLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-l.handoff:
			if it.gap != nil {
				l.bus.PublishGap(*it.gap)
			} else {
				for _, raw := range it.env.Events {
					if ev, ok := l.decode(raw); ok {
						l.publish(ev)
					}
				}
				if len(it.env.Refs) > 0 {
					l.resolve(ctx, it.env.Refs)
				}
			}
			l.publishPendingGaps()
		}
	}
}

// decode checks one event of an accepted envelope; a bad one is dropped
// and counted as malformed.
func (l *Listener) decode(raw []byte) (Event, bool) {
	// raw is valid JSON: an event of a decoded envelope, or a stashed jsonb.
	ev, err := DecodeStoredEvent(raw)
	if err != nil {
		l.droppedMalformed.Add(1)
		l.logger.Warn("stepevents listener: dropped an event that does not decode", slog.String("err", err.Error()))
		return Event{}, false
	}
	if err := template.ValidEventName(ev.EventName); err != nil {
		l.droppedMalformed.Add(1)
		l.logger.Warn("stepevents listener: dropped an event with an invalid name",
			slog.String("event_id", ev.EventID.String()), slog.String("err", err.Error()))
		return Event{}, false
	}
	return ev, true
}

func (l *Listener) publish(ev Event) {
	l.published.Add(1)
	l.bus.Publish(ev)
}

// resolve fetches stashed events through the pool (never the LISTEN
// connection) and publishes them in reference order. In place of each run
// of references it cannot resolve it publishes one GapUnresolved.
func (l *Listener) resolve(ctx context.Context, refs []uuid.UUID) {
	rctx, cancel := context.WithTimeout(ctx, l.cfg.ResolveTimeout)
	defer cancel()
	rows, err := l.queries.GetStashedEvents(rctx, l.pool, refs)
	if err != nil {
		if ctx.Err() != nil {
			return // stopping
		}
		l.refErrors.Add(uint64(len(refs)))
		l.logger.Error("stepevents listener: error fetching stashed events", slog.Int("count", len(refs)),
			slog.String("err", err.Error()))
		l.unresolved(time.Now(), uint64(len(refs)), "error fetching stashed events: "+err.Error())
		return
	}
	byID := make(map[uuid.UUID][]byte, len(rows))
	for _, r := range rows {
		byID[r.EventID] = r.Event
	}
	var lost uint64 // references not resolved since the last event published
	var since time.Time
	var cause string
	miss := func(why string) {
		l.refErrors.Add(1)
		if lost == 0 {
			since, cause = time.Now(), why
		}
		lost++
	}
	for _, id := range refs {
		raw, ok := byID[id]
		if !ok {
			l.logger.Warn("stepevents listener: stashed event not found (pruned after an hour, or forged reference)",
				slog.String("event_id", id.String()))
			miss("stashed event " + id.String() + " not found: pruned after an hour, or a forged reference")
			continue
		}
		ev, ok := l.decode(raw)
		if !ok {
			miss("stashed event " + id.String() + " does not decode")
			continue
		}
		if lost > 0 {
			l.unresolved(since, lost, cause)
			lost = 0
		}
		l.refsResolved.Add(1)
		l.publish(ev)
	}
	if lost > 0 {
		l.unresolved(since, lost, cause)
	}
}

// unresolved publishes a GapUnresolved for n stashed events lost; cause is
// why the first of them was.
func (l *Listener) unresolved(since time.Time, n uint64, cause string) {
	l.bus.PublishGap(GapSignal{Kind: GapUnresolved, Channel: l.channel, Reconnects: l.reconnects.Load(),
		Since: since, Dropped: n, Cause: cause})
}

// ListenerHealth is a Listener's state and counters.
type ListenerHealth struct {
	Channel string `json:"channel"`
	// Connected is true while LISTEN is active.
	Connected bool `json:"connected"`
	// BackendPID is the server process of the current (or last) LISTEN session.
	BackendPID     uint32    `json:"backend_pid"`
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	// Reconnects counts sessions after the first; each sent a GapReconnect.
	Reconnects uint64 `json:"reconnects"`
	LastError  string `json:"last_error,omitempty"`
	// NotificationQueueUsage is pg_notification_queue_usage(): the fraction
	// of the cluster-wide NOTIFY queue in use. When it grows, some listener
	// (perhaps in another process) is not reading; when full, every
	// notifying commit in the cluster fails.
	NotificationQueueUsage float64 `json:"notification_queue_usage"`
	QueueUsageError        string  `json:"queue_usage_error,omitempty"`
	// Pending is how many envelopes wait for the dispatcher.
	Pending int `json:"pending"`
	// Received counts notifications on the channel.
	Received uint64 `json:"received"`
	// Decoded counts envelopes accepted (shape and signature).
	Decoded uint64 `json:"decoded"`
	// DroppedMalformed counts envelopes that did not decode, and events in
	// accepted envelopes that did not decode or had an invalid name.
	DroppedMalformed uint64 `json:"dropped_malformed"`
	// DroppedForged counts envelopes unsigned or signed with another key
	// (only when a SigningKey is set).
	DroppedForged uint64 `json:"dropped_forged"`
	// DroppedOverflow counts envelopes dropped because the dispatcher was
	// PendingEnvelopes behind (a Block subscriber, or slow stash reads);
	// subscribers got a GapOverflow for them.
	DroppedOverflow uint64 `json:"dropped_overflow"`
	// Published counts events handed to the bus.
	Published uint64 `json:"published"`
	// RefsResolved counts stashed events fetched and published.
	RefsResolved uint64 `json:"refs_resolved"`
	// RefErrors counts references that could not be resolved; subscribers
	// got a GapUnresolved for them.
	RefErrors uint64 `json:"ref_errors"`
}

// Health reports the Listener's state and counters, and the server's
// notification queue usage, queried through the pool (ctx bounds that
// query; its error is reported in QueueUsageError).
func (l *Listener) Health(ctx context.Context) ListenerHealth {
	h := ListenerHealth{
		Channel: l.channel, Connected: l.connected.Load(), BackendPID: l.pid.Load(), Reconnects: l.reconnects.Load(),
		Pending: len(l.handoff), Received: l.received.Load(), Decoded: l.decoded.Load(),
		DroppedMalformed: l.droppedMalformed.Load(), DroppedForged: l.droppedForged.Load(),
		DroppedOverflow: l.droppedOverflow.Load(), Published: l.published.Load(),
		RefsResolved: l.refsResolved.Load(), RefErrors: l.refErrors.Load(),
	}
	l.stateMu.Lock()
	h.ConnectedSince, h.LastError = l.connectedSince, l.lastErr
	l.stateMu.Unlock()
	if err := l.pool.QueryRow(ctx, `SELECT pg_notification_queue_usage()`).Scan(&h.NotificationQueueUsage); err != nil {
		h.QueueUsageError = fmt.Sprintf("error querying pg_notification_queue_usage(): %v", err)
	}
	return h
}
