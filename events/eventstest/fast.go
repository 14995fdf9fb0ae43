package eventstest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/stepevents/stepevents/events"
)

// FastEventCapture records every event (and gap signal) a Bus delivers, in
// delivery order, through a "*" subscription with a large DropNewest queue.
// It is safe for concurrent use.
type FastEventCapture struct {
	unsubscribe func()

	mu      sync.Mutex
	events  []events.Event
	gaps    []events.GapSignal
	changed chan struct{} // closed and replaced on every change
}

// NewFastEventCapture subscribes to every event on bus. Call Close to unsubscribe.
func NewFastEventCapture(bus *events.Bus) (*FastEventCapture, error) {
	c := &FastEventCapture{changed: make(chan struct{})}
	unsub, err := bus.Subscribe("*", c.handle, events.WithName("eventstest.FastEventCapture"),
		events.WithQueueSize(1<<16), events.WithGapHandler(c.handleGap))
	if err != nil {
		return nil, fmt.Errorf("eventstest: error subscribing: %w", err)
	}
	c.unsubscribe = unsub
	return c, nil
}

func (c *FastEventCapture) handle(_ context.Context, ev events.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, ev)
	c.notifyLocked()
	return nil
}

func (c *FastEventCapture) handleGap(g events.GapSignal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gaps = append(c.gaps, g)
	c.notifyLocked()
}

func (c *FastEventCapture) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Close unsubscribes; what was captured stays readable.
func (c *FastEventCapture) Close() { c.unsubscribe() }

// Count returns how many events were captured.
func (c *FastEventCapture) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// Events returns the captured events in delivery order.
func (c *FastEventCapture) Events() []events.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// Gaps returns the captured gap signals.
func (c *FastEventCapture) Gaps() []events.GapSignal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.gaps)
}

func describeFast(ev events.Event) string { return ev.EventName }

// RequireCaptured fails t unless an event named name was captured, and
// returns the latest one. The failure message lists what was captured.
func (c *FastEventCapture) RequireCaptured(t testingT, name string) events.Event {
	t.Helper()
	evs := c.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].EventName == name {
			return evs[i]
		}
	}
	failuref(t, "expected fast event %q, but it was not captured; captured %s", name, listNames(evs, describeFast))
	return events.Event{}
}

// RequireNotCaptured fails t if an event named name was captured.
func (c *FastEventCapture) RequireNotCaptured(t testingT, name string) {
	t.Helper()
	evs := slices.DeleteFunc(c.Events(), func(ev events.Event) bool { return ev.EventName != name })
	if len(evs) > 0 {
		failuref(t, "expected no fast event %q, but captured %d", name, len(evs))
	}
}

// waitUntil waits until cond holds (checked on every change) or timeout.
func (c *FastEventCapture) waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok, changed := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// WaitForEvents waits until at least n events were captured; false after timeout.
func (c *FastEventCapture) WaitForEvents(n int, timeout time.Duration) bool {
	return c.waitUntil(timeout, func() bool { return len(c.events) >= n })
}

// WaitForEvent waits until an event named name was captured and returns
// the first one; false after timeout.
func (c *FastEventCapture) WaitForEvent(name string, timeout time.Duration) (events.Event, bool) {
	var found events.Event
	ok := c.waitUntil(timeout, func() bool {
		for _, ev := range c.events {
			if ev.EventName == name {
				found = ev
				return true
			}
		}
		return false
	})
	return found, ok
}

// WaitForGaps waits until at least n gap signals were captured; false after timeout.
func (c *FastEventCapture) WaitForGaps(n int, timeout time.Duration) bool {
	return c.waitUntil(timeout, func() bool { return len(c.gaps) >= n })
}
