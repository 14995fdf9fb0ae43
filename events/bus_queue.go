package events

import (
	"sync"
	"sync/atomic"
)

// maxBatch bounds how many queued deliveries a worker takes in one go.
const maxBatch = 64

// deliveryQueue is one subscription's bounded FIFO. A Go channel would do,
// but a worker that receives from a channel takes the channel's lock once
// per event, contending with the publisher for every event and every
// subscriber; this queue hands the worker everything queued (up to
// maxBatch) under one lock, and wakes a parked worker only when it is
// parked. Delivered events per second to ten subscribers went up 1.1-1.9x
// in interleaved pairs on one host (BenchmarkBusDeliver, BENCHMARKS.md).
//
// depth counts the deliveries the worker has not yet picked up, those in
// its batch included, so the bound is the queue's capacity exactly as a
// channel's would be: an event leaves the queue when the worker starts on
// it.
type deliveryQueue struct {
	mu     sync.Mutex
	ring   []delivery // len is the capacity
	head   int        // index of the oldest queued delivery
	n      int        // deliveries in ring
	parked bool       // the worker found the ring empty and waits on wake
	closed bool       // unsubscribed: push refuses everything

	_       [64]byte     // keep the worker's counter off the publisher's lines
	depth   atomic.Int64 // in ring + taken but not yet picked up
	_       [56]byte
	waiters atomic.Int32 // Block publishers waiting for room
	_       [60]byte

	wake chan struct{} // a parked worker's signal (capacity 1)
	room chan struct{} // a waiting Block publisher's signal (capacity 1)

	// The subscription's counters, counted under mu while the queue is
	// open: after close the worker may exit and its counters be folded
	// into the bus totals, so a count made later would be lost.
	dispatched, dropped *atomic.Uint64
}

func newDeliveryQueue(capacity int, dispatched, dropped *atomic.Uint64) *deliveryQueue {
	return &deliveryQueue{ring: make([]delivery, capacity), wake: make(chan struct{}, 1),
		room: make(chan struct{}, 1), dispatched: dispatched, dropped: dropped}
}

func (q *deliveryQueue) capacity() int { return len(q.ring) }

// len is how many deliveries the worker has not yet picked up.
func (q *deliveryQueue) len() int { return int(q.depth.Load()) }

// push queues d unless the queue is full or closed, and wakes a parked
// worker.
func (q *deliveryQueue) push(d delivery) bool {
	q.mu.Lock()
	if q.closed || q.depth.Load() >= int64(len(q.ring)) {
		q.mu.Unlock()
		return false
	}
	i := q.head + q.n
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	q.ring[i] = d
	q.n++
	q.depth.Add(1)
	if d.gap == nil {
		q.dispatched.Add(1)
	}
	wake := q.parked
	q.parked = false
	q.mu.Unlock()
	if wake {
		signal(q.wake)
	}
	return true
}

// close makes every later push fail. Unsubscribe closes the queue before
// the worker can see it stopped, so a stopping worker knows that nothing
// will be written into the places it frees while it still reads its batch.
func (q *deliveryQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// drop counts an event the queue had no room for, unless the queue was
// closed meanwhile (unsubscribed: no drop, as for a Publish after
// unsubscribe). It reports whether it counted.
func (q *deliveryQueue) drop() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.dropped.Add(1)
	return true
}

// take hands the worker up to maxBatch queued deliveries, oldest first,
// in place: it returns where they start in ring and how many there are.
// The worker reads them there without the lock, which is safe because
// push never writes a place the worker has not picked (depth counts those
// places). When none is queued it returns 0 and marks the worker parked:
// the next push signals wake.
func (q *deliveryQueue) take() (start, count int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		q.parked = true
		return 0, 0
	}
	start, count = q.head, min(q.n, maxBatch)
	q.head = (q.head + count) % len(q.ring)
	q.n -= count
	return start, count
}

// at returns the delivery k places after start, for the worker.
func (q *deliveryQueue) at(start, k int) *delivery {
	i := start + k
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	return &q.ring[i]
}

// picked says the worker has copied d, a delivery of its batch, to start
// on it: that frees its place, which a waiting Block publisher may use.
func (q *deliveryQueue) picked(d *delivery) {
	*d = delivery{} // drop the queue's references to the event
	q.depth.Add(-1)
	if q.waiters.Load() > 0 {
		signal(q.room)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
