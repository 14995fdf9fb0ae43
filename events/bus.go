package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultQueueSize is the capacity of a subscription's queue when neither
// BusConfig.QueueSize nor WithQueueSize sets one.
const DefaultQueueSize = 1024

// HandlerFunc handles one event delivered by a Bus. Its ctx derives from the
// bus lifetime (cancelled when Close gives up draining, or on unsubscribe)
// plus the per-delivery timeout, never from the publisher's request, which
// is long gone when a fast event arrives. ev is shared with the other
// subscribers: treat it, and its json.RawMessage fields, as read-only.
//
// Fast events are at-most-once hints: act on anything consequential only
// after re-reading authoritative state or the durable copy.
type HandlerFunc func(ctx context.Context, ev Event) error

// GapKind says why a GapSignal was sent: how fast events were lost.
type GapKind uint8

// Gap kinds. In JSON (and in String) they are "reconnect", "overflow" and
// "unresolved".
const (
	// GapReconnect: the LISTEN connection was lost and re-established;
	// whatever was notified meanwhile never reached this process. It is the
	// zero value: before gaps had kinds, every gap was a reconnect.
	GapReconnect GapKind = iota
	// GapOverflow: the listener fell PendingEnvelopes notifications behind
	// (a Block subscriber, or slow stash reads) and dropped Dropped
	// notifications, each carrying one or more events.
	GapOverflow
	// GapUnresolved: Dropped stashed (oversized) events could not be
	// fetched: the stash row was gone (pruned after an hour), never existed
	// (a forged reference), did not decode, or the fetch failed.
	GapUnresolved
)

var gapKindNames = [...]string{GapReconnect: "reconnect", GapOverflow: "overflow", GapUnresolved: "unresolved"}

// String returns "reconnect", "overflow" or "unresolved" (GapKind(n) for
// an unknown kind).
func (k GapKind) String() string {
	if int(k) < len(gapKindNames) {
		return gapKindNames[k]
	}
	return fmt.Sprintf("GapKind(%d)", uint8(k))
}

// MarshalText encodes the kind as its name.
func (k GapKind) MarshalText() ([]byte, error) {
	if int(k) >= len(gapKindNames) {
		return nil, fmt.Errorf("stepevents: unknown gap kind %d", uint8(k))
	}
	return []byte(gapKindNames[k]), nil
}

// UnmarshalText decodes a kind's name.
func (k *GapKind) UnmarshalText(b []byte) error {
	for i, n := range gapKindNames {
		if string(b) == n {
			*k = GapKind(i)
			return nil
		}
	}
	return fmt.Errorf("stepevents: unknown gap kind %q", b)
}

// GapSignal tells subscribers that fast events were (or may have been)
// lost, and why (Kind): the listener reconnected, fell behind and dropped
// notifications, or could not fetch stashed events. Re-read authoritative
// state (or catch up from the durable queue) on receipt. The listener hands
// a gap to the bus where the loss happened: after the events received
// before it and before the events received after it.
type GapSignal struct {
	// Kind says what was lost: GapReconnect (the zero value), GapOverflow or
	// GapUnresolved.
	Kind GapKind `json:"kind"`
	// Channel is the NOTIFY channel the loss happened on.
	Channel string `json:"channel"`
	// Reconnects counts the listener's reconnects so far: for a
	// GapReconnect, this one included.
	Reconnects uint64 `json:"reconnects"`
	// Since is when the loss began: when the connection was lost
	// (GapReconnect, the same as DisconnectedAt), when the first of the
	// dropped notifications was dropped (GapOverflow), or when the listener
	// failed to fetch the stashed events (GapUnresolved).
	Since time.Time `json:"since,omitzero"`
	// Dropped is how many were lost, when known: notifications for
	// GapOverflow, stashed events for GapUnresolved; 0 for GapReconnect,
	// where nobody knows what was notified meanwhile.
	Dropped uint64 `json:"dropped"`
	// DisconnectedAt is when the listener noticed the connection was lost
	// (GapReconnect only).
	DisconnectedAt time.Time `json:"disconnected_at,omitzero"`
	// ReconnectedAt is when LISTEN was active again (GapReconnect only).
	ReconnectedAt time.Time `json:"reconnected_at,omitzero"`
	// Cause is why: the error that ended the previous connection
	// (GapReconnect, if known), the full hand-off (GapOverflow), or why the
	// stashed events could not be fetched (GapUnresolved).
	Cause string `json:"cause,omitempty"`
}

// BusConfig configures a Bus. The zero value is usable.
type BusConfig struct {
	// Logger receives handler errors, panics and slow-subscriber warnings;
	// nil discards them.
	Logger *slog.Logger
	// QueueSize is the default per-subscription queue capacity
	// (DefaultQueueSize when 0). Queues are always bounded.
	QueueSize int
	// HandlerTimeout, when > 0, is the default per-delivery timeout.
	HandlerTimeout time.Duration
}

// OverflowPolicy says what Publish does when a subscription's queue is full.
// There is no unbounded option.
type OverflowPolicy struct {
	block   bool
	timeout time.Duration
}

// DropNewest, the default, drops the event for that subscription when its
// queue is full, counts it (Stats().Dropped) and warns once per slow
// episode. Publish never waits, so the listener's read loop never stalls.
var DropNewest = OverflowPolicy{}

// Block makes Publish wait up to timeout (> 0) for room in the
// subscription's queue, then drop and count the event. It delays the
// publisher, and so every other subscriber behind it: use it only for
// subscribers that must not lose events to bursts. A waiting Publish has
// no priority over a later one, which may take a freed place first.
func Block(timeout time.Duration) OverflowPolicy {
	return OverflowPolicy{block: true, timeout: timeout}
}

// String names the policy, for stats and logs.
func (p OverflowPolicy) String() string {
	if p.block {
		return fmt.Sprintf("block(%s)", p.timeout)
	}
	return "drop_newest"
}

// SubscribeOption configures one subscription.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	name      string
	queueSize int
	policy    OverflowPolicy
	timeout   time.Duration
	onGap     func(GapSignal)
}

// WithName names the subscription in stats and logs (the pattern otherwise).
func WithName(name string) SubscribeOption { return func(o *subscribeOptions) { o.name = name } }

// WithQueueSize sets the subscription's queue capacity (> 0).
func WithQueueSize(n int) SubscribeOption { return func(o *subscribeOptions) { o.queueSize = n } }

// WithOverflow sets the subscription's overflow policy: DropNewest or Block(timeout).
func WithOverflow(p OverflowPolicy) SubscribeOption {
	return func(o *subscribeOptions) { o.policy = p }
}

// WithHandlerTimeout sets the subscription's per-delivery timeout, overriding BusConfig.HandlerTimeout.
func WithHandlerTimeout(d time.Duration) SubscribeOption {
	return func(o *subscribeOptions) { o.timeout = d }
}

// WithGapHandler also delivers gap signals to the subscription, through its
// queue, so a gap arrives after the events queued before it and before the
// events queued after it (unless the queue was full at the time; then as
// soon as the worker is free, ahead of everything already queued, gaps
// included: kept gaps are never dropped, consecutive ones of the same kind
// are merged into one, Dropped summed, Since the earliest, Cause the
// first's; past 16 kept gaps a new one merges into the latest of its kind,
// so kinds may then arrive out of order).
func WithGapHandler(fn func(GapSignal)) SubscribeOption {
	return func(o *subscribeOptions) { o.onGap = fn }
}

// Bus fans events out in process: each subscription has its own bounded
// FIFO queue and goroutine, so a slow or failing subscriber never delays the
// others or the publisher (with the default policy), and each subscriber
// sees events in publish order. There is no order across subscribers.
// Handler panics are recovered and counted; the subscriber stays alive.
type Bus struct {
	logger    *slog.Logger
	queueSize int
	timeout   time.Duration

	ctx    context.Context // handler lifetime; cancelled when Close gives up or finishes
	cancel context.CancelFunc

	index atomic.Pointer[patternIndex]

	// pubMu is read-held by every Publish; Close write-locks it once to seal
	// the bus, after which no Publish can enqueue, so workers may drain and exit.
	pubMu      sync.RWMutex
	sealedFlag bool

	published, rejected, gaps atomic.Uint64

	mu      sync.Mutex // guards subs, nextID, closed, retired
	subs    []*subscription
	nextID  uint64
	closed  bool
	retired counters // counters of subscriptions whose worker has exited
	// leftQueued counts what workers that exited after Close gave up left
	// in their queues.
	leftQueued int

	wg          sync.WaitGroup
	closing     chan struct{} // closed when Close starts: Block waits give up
	sealed      chan struct{} // closed once no Publish can enqueue: workers drain
	drained     chan struct{} // closed once every worker has exited
	abandon     atomic.Bool   // Close's ctx ended: workers stop pulling
	closeOnce   sync.Once
	abandonOnce sync.Once
	report      CloseReport
	reportErr   error
}

// NewBus returns a running Bus. Call Close to stop it.
func NewBus(cfg BusConfig) *Bus {
	b := &Bus{
		logger: cfg.Logger, queueSize: cfg.QueueSize, timeout: cfg.HandlerTimeout,
		closing: make(chan struct{}), sealed: make(chan struct{}), drained: make(chan struct{}),
	}
	if b.logger == nil {
		b.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if b.queueSize <= 0 {
		b.queueSize = DefaultQueueSize
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.index.Store(newPatternIndex(nil))
	return b
}

// Subscribe delivers every event whose name matches pattern (see Pattern) to
// handler, from a goroutine of its own. It fails on an invalid pattern or
// option, or after Close. unsubscribe removes only this subscription: after
// it returns, the handler starts no new call (one in progress finishes, its
// ctx cancelled) and queued events are discarded (counted as dropped). It
// does not wait, so it may be called from the handler itself.
func (b *Bus) Subscribe(pattern string, handler HandlerFunc, opts ...SubscribeOption) (unsubscribe func(), err error) {
	if handler == nil {
		return nil, fmt.Errorf("stepevents bus: subscribing to %q with a nil handler: %w", pattern, ErrInvalidInput)
	}
	p, err := ParsePattern(pattern)
	if err != nil {
		return nil, fmt.Errorf("stepevents bus: %w", err)
	}
	return b.subscribe(p, handler, false, opts)
}

// SubscribeGap calls fn with every gap signal (see GapSignal), from a
// goroutine of its own; fn receives no events. Use WithGapHandler instead to
// get gaps in order with a subscription's events.
func (b *Bus) SubscribeGap(fn func(GapSignal)) (unsubscribe func(), err error) {
	if fn == nil {
		return nil, fmt.Errorf("stepevents bus: SubscribeGap with a nil func: %w", ErrInvalidInput)
	}
	return b.subscribe(Pattern{raw: "(gaps)"}, nil, true, []SubscribeOption{WithGapHandler(fn), WithQueueSize(16)})
}

func (b *Bus) subscribe(p Pattern, handler HandlerFunc, gapOnly bool, opts []SubscribeOption) (func(), error) {
	o := subscribeOptions{queueSize: b.queueSize, timeout: b.timeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.queueSize <= 0 {
		return nil, fmt.Errorf("stepevents bus: subscription to %q: queue size must be > 0, got %d: %w", p, o.queueSize, ErrInvalidInput)
	}
	if o.policy.block && o.policy.timeout <= 0 {
		return nil, fmt.Errorf("stepevents bus: subscription to %q: Block needs a timeout > 0, got %s: %w", p, o.policy.timeout, ErrInvalidInput)
	}
	if o.timeout < 0 {
		return nil, fmt.Errorf("stepevents bus: subscription to %q: handler timeout must be >= 0, got %s: %w", p, o.timeout, ErrInvalidInput)
	}
	if o.name == "" {
		o.name = p.String()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("stepevents bus: subscribing to %q after Close: %w", p, ErrClosed)
	}
	b.nextID++
	s := &subscription{
		bus: b, id: b.nextID, name: o.name, pattern: p, handler: handler, onGap: o.onGap, gapOnly: gapOnly,
		policy: o.policy, timeout: o.timeout, stop: make(chan struct{}),
	}
	s.queue = newDeliveryQueue(o.queueSize, &s.dispatched, &s.dropped)
	s.ctx, s.cancel = context.WithCancel(b.ctx)
	b.subs = append(b.subs, s)
	b.reindexLocked()
	b.wg.Add(1)
	go s.run()
	var once sync.Once
	return func() { once.Do(func() { b.unsubscribe(s) }) }, nil
}

func (b *Bus) unsubscribe(s *subscription) {
	s.queue.close()
	s.stopped.Store(true)
	b.mu.Lock()
	b.reindexLocked()
	b.mu.Unlock()
	s.cancel()
	close(s.stop)
}

// reindexLocked swaps in an index of the live subscriptions. b.mu is held.
func (b *Bus) reindexLocked() {
	live := make([]*subscription, 0, len(b.subs))
	for _, s := range b.subs {
		if !s.stopped.Load() {
			live = append(live, s)
		}
	}
	b.index.Store(newPatternIndex(live))
}

// retire folds an exited worker's counters into the bus totals.
func (b *Bus) retire(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = slices.DeleteFunc(b.subs, func(x *subscription) bool { return x == s })
	b.retired.add(s.snapshot())
	if b.abandon.Load() && !s.stopped.Load() {
		b.leftQueued += s.queue.len() // still counted by queued() for Close's report
	}
}

// Publish hands ev to the queue of every subscription whose pattern
// matches, and returns. With DropNewest (the default) it never waits: a full
// queue drops the event for that subscription only, counted. A Block
// subscription may make it wait up to its timeout. After Close, events are
// counted as rejected and dropped. Matching does not allocate.
func (b *Bus) Publish(ev Event) {
	b.pubMu.RLock()
	defer b.pubMu.RUnlock()
	if b.sealedFlag {
		b.rejected.Add(1)
		return
	}
	b.published.Add(1)
	b.index.Load().forEachMatch(ev.EventName, func(s *subscription) { s.offer(delivery{ev: ev}) })
}

// PublishGap sends g to every subscription with a gap handler. It never
// waits; a subscription whose queue is full gets it as soon as its worker
// is free.
func (b *Bus) PublishGap(g GapSignal) {
	b.pubMu.RLock()
	defer b.pubMu.RUnlock()
	if b.sealedFlag {
		return
	}
	b.gaps.Add(1)
	for _, s := range b.index.Load().gap {
		s.offerGap(g)
	}
}

// CloseReport says what Close did with the events still queued.
type CloseReport struct {
	// Queued is how many events were queued when Close sealed the bus.
	Queued int `json:"queued"`
	// Undelivered is how many of them were never handed to a handler
	// because ctx ended first. It may include one event per subscription
	// that its worker was starting at that very moment.
	Undelivered int `json:"undelivered"`
}

// Close stops accepting events and subscriptions, then lets every
// subscription drain its queue until ctx ends. If ctx ends first it cancels
// the handlers' ctx, stops the workers after their current call and returns
// the report with an error wrapping ctx.Err(). Every worker goroutine exits
// once its current handler returns; a handler that ignores ctx delays that.
// Close is idempotent: later calls wait (until their ctx ends) for the
// workers and return the first call's report and error.
func (b *Bus) Close(ctx context.Context) (CloseReport, error) {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.closing)
		b.pubMu.Lock()
		b.sealedFlag = true
		b.pubMu.Unlock()
		b.report.Queued = b.queued()
		close(b.sealed)
		go func() {
			b.wg.Wait()
			close(b.drained)
		}()
	})
	select {
	case <-b.drained:
		b.cancel()
		return b.report, b.reportErr
	case <-ctx.Done():
	}
	b.abandonOnce.Do(func() {
		// Count before cancelling: a worker whose handler returns exits and
		// leaves the bus's subscription list.
		b.abandon.Store(true)
		b.report.Undelivered = b.queued()
		b.cancel()
		b.reportErr = fmt.Errorf("stepevents bus: closed with %d of %d queued events undelivered: %w",
			b.report.Undelivered, b.report.Queued, ctx.Err())
		b.logger.Warn("stepevents bus: close timed out", slog.Int("undelivered", b.report.Undelivered),
			slog.Int("queued", b.report.Queued))
	})
	return b.report, b.reportErr
}

func (b *Bus) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.leftQueued
	for _, s := range b.subs {
		if !s.stopped.Load() {
			n += s.queue.len()
		}
	}
	return n
}

// BusStats is a point-in-time copy of a Bus's counters.
type BusStats struct {
	// Published counts Publish calls accepted (before Close).
	Published uint64 `json:"published"`
	// Rejected counts Publish calls after Close.
	Rejected uint64 `json:"rejected"`
	// Dispatched counts events placed in a subscription queue (one per matching subscription).
	Dispatched uint64 `json:"dispatched"`
	// Delivered counts handler calls that returned nil.
	Delivered uint64 `json:"delivered"`
	// HandlerErrors counts handler calls that returned an error (timeouts included).
	HandlerErrors uint64 `json:"handler_errors"`
	// Panics counts handler calls that panicked (recovered).
	Panics uint64 `json:"panics"`
	// Dropped counts events a subscription lost: queue full, Block timeout,
	// or discarded on unsubscribe.
	Dropped uint64 `json:"dropped"`
	// Gaps counts gap signals published.
	Gaps uint64 `json:"gaps"`
	// Subscribers are the live subscriptions, in subscription order.
	Subscribers []SubscriberStats `json:"subscribers"`
}

// SubscriberStats are one subscription's counters and queue depth.
type SubscriberStats struct {
	ID            uint64 `json:"id"`
	Name          string `json:"name"`
	Pattern       string `json:"pattern"`
	Policy        string `json:"policy"`
	QueueDepth    int    `json:"queue_depth"`
	QueueCapacity int    `json:"queue_capacity"`
	Dispatched    uint64 `json:"dispatched"`
	Delivered     uint64 `json:"delivered"`
	HandlerErrors uint64 `json:"handler_errors"`
	Panics        uint64 `json:"panics"`
	Dropped       uint64 `json:"dropped"`
}

// Stats returns the bus counters, totals including subscriptions since removed.
func (b *Bus) Stats() BusStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	total := b.retired
	out := BusStats{Published: b.published.Load(), Rejected: b.rejected.Load(), Gaps: b.gaps.Load(),
		Subscribers: []SubscriberStats{}}
	for _, s := range b.subs {
		c := s.snapshot()
		total.add(c)
		if s.stopped.Load() {
			continue
		}
		out.Subscribers = append(out.Subscribers, SubscriberStats{
			ID: s.id, Name: s.name, Pattern: s.pattern.String(), Policy: s.policy.String(),
			QueueDepth: s.queue.len(), QueueCapacity: s.queue.capacity(), Dispatched: c.dispatched, Delivered: c.delivered,
			HandlerErrors: c.handlerErrors, Panics: c.panics, Dropped: c.dropped,
		})
	}
	out.Dispatched, out.Delivered, out.HandlerErrors = total.dispatched, total.delivered, total.handlerErrors
	out.Panics, out.Dropped = total.panics, total.dropped
	return out
}

type counters struct{ dispatched, delivered, handlerErrors, panics, dropped uint64 }

func (c *counters) add(o counters) {
	c.dispatched += o.dispatched
	c.delivered += o.delivered
	c.handlerErrors += o.handlerErrors
	c.panics += o.panics
	c.dropped += o.dropped
}

// delivery is one queue entry: an event, or a gap signal.
type delivery struct {
	ev  Event
	gap *GapSignal
}

// subscription is one subscriber: its queue, its worker and its counters.
type subscription struct {
	bus     *Bus
	id      uint64
	name    string
	pattern Pattern
	handler HandlerFunc
	onGap   func(GapSignal)
	gapOnly bool
	policy  OverflowPolicy
	timeout time.Duration

	ctx     context.Context
	cancel  context.CancelFunc
	queue   *deliveryQueue
	stop    chan struct{}
	stopped atomic.Bool
	slow    atomic.Bool // in a dropping episode (warned once)

	// Gaps the queue had no room for, oldest first, for the worker to
	// deliver as soon as it is free; hasGaps says whether there are any.
	gapMu       sync.Mutex
	pendingGaps []GapSignal
	hasGaps     atomic.Bool

	dispatched, delivered, handlerErrors, panics, dropped atomic.Uint64
}

func (s *subscription) snapshot() counters {
	return counters{dispatched: s.dispatched.Load(), delivered: s.delivered.Load(),
		handlerErrors: s.handlerErrors.Load(), panics: s.panics.Load(), dropped: s.dropped.Load()}
}

func (s *subscription) offer(d delivery) {
	if s.stopped.Load() {
		return
	}
	if s.queue.push(d) || s.policy.block && s.waitForRoom(d) {
		return // push counted it dispatched
	}
	if !s.queue.drop() {
		return // unsubscribed meanwhile: not a slow subscriber
	}
	if !s.slow.Swap(true) {
		s.bus.logger.Warn("stepevents bus: subscriber queue full, dropping events",
			slog.String("subscriber", s.name), slog.String("pattern", s.pattern.String()),
			slog.String("policy", s.policy.String()), slog.Int("queue_capacity", s.queue.capacity()),
			slog.String("event_name", d.ev.EventName), slog.String("event_id", d.ev.EventID.String()))
	}
}

func (s *subscription) offerGap(g GapSignal) {
	if s.stopped.Load() {
		return
	}
	if !s.queue.push(delivery{gap: &g}) {
		s.deferGap(g)
	}
}

// maxPendingGaps bounds the gaps a subscription keeps while its queue is
// full: beyond it a gap is merged into the latest one of its kind.
const maxPendingGaps = 16

// deferGap keeps g for the worker to deliver as soon as it is free, and
// wakes it in case it emptied its queue meanwhile and parked. A gap of the
// same kind as the latest one kept is merged into it, so no gap is lost
// and a worker stuck in a handler cannot make the list grow without bound.
func (s *subscription) deferGap(g GapSignal) {
	s.gapMu.Lock()
	merged := false
	for i := len(s.pendingGaps) - 1; i >= 0; i-- {
		if s.pendingGaps[i].Kind == g.Kind && (i == len(s.pendingGaps)-1 || len(s.pendingGaps) >= maxPendingGaps) {
			mergeGap(&s.pendingGaps[i], g)
			merged = true
			break
		}
	}
	if !merged {
		s.pendingGaps = append(s.pendingGaps, g)
	}
	s.hasGaps.Store(true)
	s.gapMu.Unlock()
	signal(s.queue.wake)
}

// mergeGap folds the later gap g into into, of the same kind: the losses
// add up and the window spans both.
func mergeGap(into *GapSignal, g GapSignal) {
	into.Dropped += g.Dropped
	into.Since = earliest(into.Since, g.Since)
	into.DisconnectedAt = earliest(into.DisconnectedAt, g.DisconnectedAt)
	if g.ReconnectedAt.After(into.ReconnectedAt) {
		into.ReconnectedAt = g.ReconnectedAt
	}
	into.Reconnects = max(into.Reconnects, g.Reconnects)
	if into.Cause == "" {
		into.Cause = g.Cause // why the first was lost, as documented
	}
}

// earliest returns the earlier of two times, ignoring a zero one.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// waitForRoom is the Block policy: it queues d as soon as the worker frees
// a place, or gives up after the policy's timeout, on unsubscribe or when
// Close starts.
func (s *subscription) waitForRoom(d delivery) bool {
	q := s.queue
	q.waiters.Add(1)
	defer q.waiters.Add(-1)
	if q.push(d) { // a place freed before the worker could see this waiter
		return true
	}
	t := time.NewTimer(s.policy.timeout)
	defer t.Stop()
	for {
		select {
		case <-q.room:
			select {
			case <-s.bus.closing: // room and closing both ready: Close wins
				return false
			default:
			}
			if q.push(d) {
				if q.waiters.Load() > 1 {
					signal(q.room) // one signal may stand for several freed places
				}
				return true
			}
		case <-t.C:
			return false
		case <-s.stop:
			return false
		case <-s.bus.closing:
			return false
		}
	}
}

// run is the subscription's worker: it delivers queued events in order
// until unsubscribed, or until Close seals the bus and the queue is drained
// (or Close gives up).
func (s *subscription) run() {
	defer s.bus.wg.Done()
	defer s.bus.retire(s)
	for {
		s.deliverPendingGap()
		// While events are queued, take them without looking at stop or
		// sealed: deliverBatch checks unsubscribe and Close's abandon for
		// every event.
		start, count := s.queue.take()
		if count == 0 {
			select {
			case <-s.queue.wake:
				continue
			case <-s.stop:
				s.discard()
				return
			case <-s.bus.sealed:
				s.drain()
				return
			}
		}
		if !s.deliverBatch(start, count) {
			return
		}
	}
}

// deliverBatch delivers the count deliveries take returned at start, in
// order, with any pending gap between them. It reports false when the
// worker must stop: once Close gave up (what is left stays queued and is
// reported undelivered), or once unsubscribed (the rest of the batch and
// of the queue are dropped).
func (s *subscription) deliverBatch(start, count int) bool {
	for k := range count {
		if s.bus.abandon.Load() {
			return false // what is left stays queued, counted as undelivered
		}
		if k > 0 {
			s.deliverPendingGap()
		}
		d := s.queue.at(start, k)
		dv := *d
		s.queue.picked(d) // it leaves the queue as the worker starts on it
		if s.stopped.Load() {
			// Unsubscribed: the rest of this batch first, then the rest of
			// the queue (closed, so nothing overwrites this batch meanwhile).
			if dv.gap == nil {
				s.dropped.Add(1)
			}
			s.dropTaken(start, k+1, count)
			s.discard()
			return false
		}
		s.deliver(dv)
	}
	return true
}

// dropTaken drops the deliveries of an unsubscribed worker's batch that it
// will not make.
func (s *subscription) dropTaken(start, from, count int) {
	for k := from; k < count; k++ {
		d := s.queue.at(start, k)
		if d.gap == nil {
			s.dropped.Add(1)
		}
		s.queue.picked(d)
	}
}

func (s *subscription) drain() {
	for !s.bus.abandon.Load() {
		s.deliverPendingGap()
		start, count := s.queue.take()
		if count == 0 || !s.deliverBatch(start, count) {
			return
		}
	}
}

func (s *subscription) discard() {
	for {
		start, count := s.queue.take()
		if count == 0 {
			return
		}
		for k := range count {
			d := s.queue.at(start, k)
			if d.gap == nil {
				s.dropped.Add(1)
			}
			s.queue.picked(d)
		}
	}
}

func (s *subscription) deliverPendingGap() {
	if !s.hasGaps.Load() {
		return
	}
	s.gapMu.Lock()
	gaps := s.pendingGaps
	s.pendingGaps = nil
	s.hasGaps.Store(false)
	s.gapMu.Unlock()
	for i := range gaps {
		if s.stopped.Load() {
			return
		}
		s.deliver(delivery{gap: &gaps[i]})
	}
}

func (s *subscription) deliver(d delivery) {
	if d.gap != nil {
		if s.onGap != nil {
			s.callGap(*d.gap)
		}
		return
	}
	ctx := s.ctx
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	panicked, err := s.call(ctx, d.ev)
	switch {
	case panicked:
		s.panics.Add(1)
	case err != nil:
		s.handlerErrors.Add(1)
		s.bus.logger.Warn("stepevents bus: handler error",
			slog.String("subscriber", s.name), slog.String("pattern", s.pattern.String()),
			slog.String("event_name", d.ev.EventName), slog.String("event_id", d.ev.EventID.String()),
			slog.String("err", err.Error()))
	default:
		s.delivered.Add(1)
	}
	if s.slow.Load() && s.queue.len() == 0 {
		s.slow.Store(false)
		s.bus.logger.Info("stepevents bus: subscriber caught up", slog.String("subscriber", s.name),
			slog.String("pattern", s.pattern.String()), slog.Uint64("dropped_total", s.dropped.Load()))
	}
}

// call runs the handler, recovering a panic: a recovered panic is a
// failure, logged with its stack, and the worker carries on.
func (s *subscription) call(ctx context.Context, ev Event) (panicked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			s.bus.logger.Error("stepevents bus: handler panicked",
				slog.String("subscriber", s.name), slog.String("pattern", s.pattern.String()),
				slog.String("event_name", ev.EventName), slog.String("event_id", ev.EventID.String()),
				slog.String("panic", fmt.Sprint(r)), slog.String("stack", string(debug.Stack())))
		}
	}()
	return false, s.handler(ctx, ev)
}

func (s *subscription) callGap(g GapSignal) {
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			s.bus.logger.Error("stepevents bus: gap handler panicked", slog.String("subscriber", s.name),
				slog.String("panic", fmt.Sprint(r)), slog.String("stack", string(debug.Stack())))
		}
	}()
	s.onGap(g)
}
