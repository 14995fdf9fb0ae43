package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

// Fast-latency parameters.
const (
	fastClients = 8 // clients issuing completions (open loop at a fixed rate, or closed loop for max)
	// rawChannel is the baseline's NOTIFY channel: a bare pg_notify
	// received by a bare LISTEN connection.
	rawChannel = "stepevents_bench_raw"
	// settleTimeout bounds the wait for deliveries after each slice; what
	// has not arrived by then is counted lost.
	settleTimeout = 3 * time.Second
)

// fastGroup measures commit → subscriber handler latency of fast events at
// rate completions per second (0: as fast as fastClients can go): a step
// with one fast event completed through the after-commit client, received by
// an events.Listener and dispatched by an events.Bus to one subscriber. The
// baseline is a bare autocommit pg_notify received on a bare LISTEN
// connection at the same rate. full adds the in-transaction mode and the
// same event rate carried by a quarter of the completions (four fast events
// each), which separates the delivery path from the completion rate.
func (e *benchEnv) fastGroup(rate float64, full bool) benchGroup {
	label := "max"
	if rate > 0 {
		label = fmt.Sprintf("%.0f", rate)
	}
	row := "fast_latency/" + label
	rows := []string{row}
	inTxRow := "fast_latency/in_tx/" + label
	if full {
		rows = append(rows, inTxRow)
	}
	var tg *target
	if rate == 1000 {
		tg = targetFastP99
	}
	arr := newArrivals()
	subject := e.fastSide("fast_after_commit_to_handler", tplFast, e.afterCommit, rate, arr)
	inTx := e.fastSide("fast_in_transaction_to_handler", tplFast, e.inTx, rate, arr)
	batched := e.fastSide("fast_after_commit_4_per_completion", tplFast4, e.afterCommit, rate/4, arr)
	x4Row := "fast_latency/" + label + "x4"
	if full {
		rows = append(rows, x4Row)
	}
	raw := &benchSide{name: "bare_pg_notify_to_listen", unit: "events", clients: fastClients, rate: rate,
		delivery: newDeliveryRecorder()}
	raw.op = func(ctx context.Context, _ uuid.UUID) (int, error) {
		id := uuid.New()
		raw.delivery.expect(id, time.Now())
		_, err := e.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, rawChannel, id.String())
		return 1, err
	}
	sides := []*benchSide{subject, raw}
	if full {
		sides = append(sides, inTx, batched)
	}
	return benchGroup{
		name: "fast latency " + label, rows: rows, sides: sides,
		setup: func(ctx context.Context) (func(context.Context) error, error) {
			return e.startFastReceivers(ctx, arr, raw.delivery, subject.delivery, inTx.delivery, batched.delivery)
		},
		report: func(s []*benchSide) []scenarioResult {
			out := []scenarioResult{latencyRow(row, fastClients, s[0].summary(), s[1].summary(), tg)}
			if full {
				out = append(out, latencyRow(inTxRow, fastClients, s[2].summary(), s[1].summary(), nil),
					latencyRow(x4Row, fastClients, s[3].summary(), s[1].summary(), tg))
			}
			for i := range out {
				out[i].Note = fastNote(out[i])
			}
			return out
		},
	}
}

// fastSide completes steps of tpl (bench_fast or bench_fast4) with client at
// rate completions per second through Client.CompleteStep, and times each
// fast event from when its transaction's COMMIT left the client (stamped by
// commitStamper) to its subscriber's handler.
func (e *benchEnv) fastSide(name, tpl string, client *events.Client, rate float64, arr *arrivals) *benchSide {
	s := &benchSide{name: name, unit: "events", clients: fastClients, rate: rate, delivery: newDeliveryRecorder(),
		prepare: func(ctx context.Context, n int) ([]uuid.UUID, error) { return e.prepareSteps(ctx, tpl, n) }}
	s.op = func(ctx context.Context, step uuid.UUID) (int, error) {
		var stamp commitStamp
		comp, err := client.CompleteStep(withCommitStamp(ctx, &stamp), step, benchResult)
		if err != nil {
			return 0, err
		}
		if stamp.at.IsZero() {
			return 0, fmt.Errorf("completing step %s sent no COMMIT the bench could stamp", step)
		}
		n := 0
		for _, p := range comp.Published {
			if p.Mode == template.DeliveryFast || p.Mode == template.DeliveryBroadcast {
				arr.expect(s.delivery, p.EventID, stamp.at)
				n++
			}
		}
		if n == 0 {
			return 0, fmt.Errorf("step %s published no fast event (%d skipped, errors %v)", step, len(comp.Skipped), comp.Errors)
		}
		return n, nil
	}
	return s
}

// startFastReceivers starts what receives fast events: a Listener and Bus
// whose one subscriber hands every event to the recorder expecting it, and
// a bare LISTEN connection on rawChannel for the baseline. It returns their
// teardown.
func (e *benchEnv) startFastReceivers(ctx context.Context, arr *arrivals, raw *deliveryRecorder,
	subjects ...*deliveryRecorder) (func(context.Context) error, error) {
	bus := events.NewBus(events.BusConfig{QueueSize: 1 << 16})
	_, err := bus.Subscribe("*", func(_ context.Context, ev events.Event) error {
		arr.deliver(ev.EventID, subjects)
		return nil
	}, events.WithName("bench_latency"))
	if err != nil {
		return nil, fmt.Errorf("error subscribing the latency recorder: %w", err)
	}
	listener, err := events.NewListener(e.pool, bus, events.ListenerConfig{})
	if err != nil {
		return nil, fmt.Errorf("error creating the listener: %w", err)
	}
	if err := listener.Start(ctx); err != nil {
		_, _ = bus.Close(ctx)
		return nil, fmt.Errorf("error starting the listener: %w", err)
	}
	rawConn, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig)
	if err == nil {
		_, err = rawConn.Exec(ctx, "LISTEN "+rawChannel)
	}
	if err != nil {
		_ = listener.Stop(ctx)
		_, _ = bus.Close(ctx)
		if rawConn != nil {
			_ = rawConn.Close(ctx)
		}
		return nil, fmt.Errorf("error starting the bare LISTEN connection: %w", err)
	}
	rawCtx, stopRaw := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			n, err := rawConn.WaitForNotification(rawCtx)
			if err != nil {
				return
			}
			if id, err := uuid.Parse(n.Payload); err == nil {
				raw.deliver(id)
			}
		}
	}()
	return func(ctx context.Context) error {
		stopRaw()
		wg.Wait()
		defer arr.reset()
		errs := []error{rawConn.Close(ctx), listener.Stop(ctx)}
		if _, err := bus.Close(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("error stopping the fast receivers: %w", err)
		}
		return nil
	}, nil
}

// fastNote flags lost events and a rate the subject could not keep.
func fastNote(r scenarioResult) string {
	var notes []string
	s := r.Subject
	if s.Lost > 0 || r.Baseline.Lost > 0 {
		notes = append(notes, fmt.Sprintf("lost %d subject / %d baseline events", s.Lost, r.Baseline.Lost))
	}
	if s.TargetRate > 0 && s.Throughput < 0.95*s.TargetRate {
		notes = append(notes, fmt.Sprintf("subject reached %.0f of the %.0f/s asked", s.Throughput, s.TargetRate))
	}
	if len(notes) == 0 {
		return ""
	}
	return fmt.Sprint(notes)
}
