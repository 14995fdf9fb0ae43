package events_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/eventstest"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/test/testdb"
)

const validateResult = `{"order_id":"o-1","validation_timestamp":"2025-01-01T00:00:00Z"}`

// listening gives a bundle a bus, a capture of everything on it and a
// started listener.
func listening(t *testing.T, b *bundle, cfg events.ListenerConfig) (*events.Listener, *eventstest.FastEventCapture) {
	t.Helper()
	bus := newBus(t, events.BusConfig{})
	capture, err := eventstest.NewFastEventCapture(bus)
	require.NoError(t, err)
	l, err := events.NewListener(b.pool, bus, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	require.NoError(t, l.Start(ctx))
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	return l, capture
}

// wireFor builds a NOTIFY payload carrying one event named name, signed
// with key when key is set.
func wireFor(t *testing.T, name string, key []byte) string {
	t.Helper()
	ev, err := json.Marshal(events.Event{EventID: uuid.New(), EventName: name, EventVersion: events.EventVersion})
	require.NoError(t, err)
	env, err := json.Marshal(events.Envelope{Events: []json.RawMessage{ev}})
	require.NoError(t, err)
	w := map[string]any{"v": 1, "env": json.RawMessage(env)}
	if key != nil {
		m := hmac.New(sha256.New, key)
		m.Write(env)
		w["sig"] = hex.EncodeToString(m.Sum(nil))
	}
	out, err := json.Marshal(w)
	require.NoError(t, err)
	return string(out)
}

func notify(t *testing.T, pool *pgxpool.Pool, payload string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `SELECT pg_notify($1, $2)`, events.DefaultChannel, payload)
	require.NoError(t, err)
}

// barrier sends a marker event and waits for it on the capture: everything
// committed before it has then been through the listener and the bus.
func barrier(t *testing.T, b *bundle, capture *eventstest.FastEventCapture, key []byte) {
	t.Helper()
	name := "test.barrier_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	notify(t, b.pool, wireFor(t, name, key))
	_, ok := capture.WaitForEvent(name, waitTimeout)
	require.True(t, ok, "barrier %s not received", name)
}

func countNamed(evs []events.Event, name string) int {
	n := 0
	for _, ev := range evs {
		if ev.EventName == name {
			n++
		}
	}
	return n
}

// TestListenerInTransactionOnlyAfterCommit: the NOTIFY is issued inside the
// step transaction; the barrier proves the listener was live and had
// processed everything committed before it, yet saw nothing until commit.
func TestListenerInTransactionOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	b := setup(t, &events.Config{FastMode: events.FastInTransaction})
	_, capture := listening(t, b, events.ListenerConfig{})

	_, steps := b.newTask(t)
	b.start(t, steps[stepValidate])
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	comp, err := b.client.CompleteStepTx(b.ctx, tx, steps[stepValidate], json.RawMessage(validateResult))
	require.NoError(t, err)
	require.Len(t, comp.Published, 1)
	barrier(t, b, capture, nil)
	capture.RequireNotCaptured(t, "order.validated")
	require.NoError(t, tx.Commit(b.ctx))
	ev, ok := capture.WaitForEvent("order.validated", waitTimeout)
	require.True(t, ok)
	require.Equal(t, comp.Published[0].EventID, ev.EventID)
	require.JSONEq(t, validateResult, string(ev.Payload.Payload))

	_, steps = b.newTask(t)
	b.start(t, steps[stepValidate])
	tx, err = b.pool.Begin(b.ctx)
	require.NoError(t, err)
	_, err = b.client.CompleteStepTx(b.ctx, tx, steps[stepValidate], json.RawMessage(validateResult))
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(b.ctx))
	barrier(t, b, capture, nil)
	require.Equal(t, 1, countNamed(capture.Events(), "order.validated"), "the rolled-back event never arrives")
}

// TestListenerAfterCommitMode: the default mode releases fast events after
// commit, and never for a transaction that rolled back.
func TestListenerAfterCommitMode(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	l, capture := listening(t, b, events.ListenerConfig{})

	_, steps := b.newTask(t)
	b.start(t, steps[stepValidate])
	errRollback := context.Canceled
	err := b.client.InTx(b.ctx, func(ctx context.Context, tx pgx.Tx) error {
		_, err := b.client.CompleteStepTx(ctx, tx, steps[stepValidate], json.RawMessage(validateResult))
		require.NoError(t, err)
		return errRollback
	})
	require.ErrorIs(t, err, errRollback)
	barrier(t, b, capture, nil)
	capture.RequireNotCaptured(t, "order.validated")

	comp, err := b.client.CompleteStep(b.ctx, steps[stepValidate], json.RawMessage(validateResult)) // still in progress
	require.NoError(t, err)
	ev, ok := capture.WaitForEvent("order.validated", waitTimeout)
	require.True(t, ok)
	require.Equal(t, comp.Published[0].EventID, ev.EventID)
	require.Equal(t, steps[stepValidate], ev.Metadata.StepUUID)
	h := l.Health(b.ctx)
	require.Empty(t, h.QueueUsageError)
	require.Equal(t, uint64(2), h.Published)
	require.Zero(t, h.DroppedMalformed+h.DroppedForged+h.DroppedOverflow)
}

// TestListenerReconnects terminates the listener's backend: it reconnects,
// subscribers get a gap signal, and later events arrive.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	b := setup(t, &events.Config{FastMode: events.FastInTransaction})
	l, capture := listening(t, b, events.ListenerConfig{ReconnectDelay: 10 * time.Millisecond})

	before := l.Health(b.ctx)
	require.True(t, before.Connected)
	require.NotZero(t, before.BackendPID)
	var query string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT query FROM pg_stat_activity WHERE pid = $1`, before.BackendPID).Scan(&query))
	require.True(t, strings.HasPrefix(strings.ToLower(query), "listen"), "the listener's session only ran LISTEN, got %q", query)
	var terminated bool
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT pg_terminate_backend($1)`, before.BackendPID).Scan(&terminated))
	require.True(t, terminated)

	require.True(t, capture.WaitForGaps(1, waitTimeout), "no gap signal after the reconnect")
	gap := capture.Gaps()[0]
	require.Equal(t, events.GapReconnect, gap.Kind)
	require.Equal(t, uint64(1), gap.Reconnects)
	require.Equal(t, events.DefaultChannel, gap.Channel)
	require.Equal(t, gap.DisconnectedAt, gap.Since)
	require.False(t, gap.Since.IsZero())
	require.Zero(t, gap.Dropped, "nobody knows what was notified meanwhile")
	require.NotEmpty(t, gap.Cause)
	require.False(t, gap.ReconnectedAt.Before(gap.DisconnectedAt))
	after := l.Health(b.ctx)
	require.True(t, after.Connected)
	require.Equal(t, uint64(1), after.Reconnects)
	require.NotEqual(t, before.BackendPID, after.BackendPID)

	_, steps := b.newTask(t)
	comp := b.complete(t, steps[stepValidate], validateResult)
	ev, ok := capture.WaitForEvent("order.validated", waitTimeout)
	require.True(t, ok)
	require.Equal(t, comp.Published[0].EventID, ev.EventID)
}

// TestListenerOversizedEvent: an event too big for NOTIFY travels as a
// reference and is fetched whole from the stash through the pool.
func TestListenerOversizedEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	l, capture := listening(t, b, events.ListenerConfig{})
	big, err := json.Marshal(map[string]any{"order_id": "o-1", "validation_timestamp": "2025-01-01T00:00:00Z",
		"notes": strings.Repeat("x", 9000)})
	require.NoError(t, err)
	_, steps := b.newTask(t)
	comp := b.complete(t, steps[stepValidate], string(big))
	require.True(t, comp.Published[0].ByReference)
	ev, ok := capture.WaitForEvent("order.validated", waitTimeout)
	require.True(t, ok)
	require.Equal(t, comp.Published[0].EventID, ev.EventID)
	require.JSONEq(t, string(big), string(ev.Payload.Payload))
	require.JSONEq(t, string(big), string(ev.Payload.ExecutionResult.Result))
	h := l.Health(b.ctx)
	require.Equal(t, uint64(1), h.RefsResolved)
	require.Zero(t, h.RefErrors)
}

// TestListenerDropsForgedAndMalformed: with a key set, envelopes signed with
// another key or unsigned are dropped and counted, as is garbage; correctly
// signed events still arrive.
func TestListenerDropsForgedAndMalformed(t *testing.T) {
	t.Parallel()
	right, wrong := []byte("right key"), []byte("wrong key")
	b := setup(t, &events.Config{FastMode: events.FastInTransaction, SigningKey: wrong})
	l, capture := listening(t, b, events.ListenerConfig{SigningKey: right})
	good, err := events.NewClient(b.ctx, b.pool, &events.Config{FastMode: events.FastInTransaction,
		SigningKey: right, Publishers: publishers.All()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, good.Close(context.Background())) })

	_, steps := b.newTask(t)
	b.complete(t, steps[stepValidate], validateResult) // signed with the wrong key
	notify(t, b.pool, wireFor(t, "test.unsigned", nil))
	notify(t, b.pool, `not json`)
	notify(t, b.pool, `{"v":1,"sig":"00","env":{"events":[{"event_name":"test.forged"}]}}`)

	task2, steps2 := b.newTask(t)
	b.start(t, steps2[stepValidate])
	_, err = good.CompleteStep(b.ctx, steps2[stepValidate], json.RawMessage(validateResult))
	require.NoError(t, err)
	ev, ok := capture.WaitForEvent("order.validated", waitTimeout)
	require.True(t, ok)
	require.Equal(t, task2, ev.Metadata.TaskUUID, "only the correctly signed event arrives")
	require.Equal(t, 1, capture.Count())

	h := l.Health(b.ctx)
	require.Equal(t, uint64(5), h.Received)
	require.Equal(t, uint64(1), h.Decoded)
	require.Equal(t, uint64(3), h.DroppedForged)
	require.Equal(t, uint64(1), h.DroppedMalformed)
}

func TestListenerStartFailsFast(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=5")
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	defer pool.Close()
	bus := newBus(t, events.BusConfig{})
	l, err := events.NewListener(pool, bus, events.ListenerConfig{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err = l.Start(ctx)
	require.ErrorContains(t, err, `stepevents listener: error starting LISTEN on "stepevents_events": connect: opening the dedicated LISTEN connection`)
	require.ErrorContains(t, err, "connection refused")
	require.NoError(t, ctx.Err(), "Start returned the error instead of retrying until ctx ended")
	require.NoError(t, l.Stop(ctx))
	require.Error(t, l.Start(ctx), "a Listener starts once")
}

func TestNewListenerValidates(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	bus := newBus(t, events.BusConfig{})
	_, err := events.NewListener(pool, bus, events.ListenerConfig{Channel: "Bad-Channel"})
	require.ErrorIs(t, err, events.ErrInvalidInput)
	_, err = events.NewListener(nil, bus, events.ListenerConfig{})
	require.ErrorIs(t, err, events.ErrInvalidInput)
	l, err := events.NewListener(pool, bus, events.ListenerConfig{})
	require.NoError(t, err)
	require.NoError(t, l.Stop(context.Background()), "Stop before Start is a no-op")
	h := l.Health(context.Background())
	require.False(t, h.Connected)
	raw, err := json.Marshal(h)
	require.NoError(t, err)
	for _, k := range []string{`"connected":false`, `"reconnects":0`, `"notification_queue_usage":`, `"received":0`,
		`"decoded":0`, `"dropped_malformed":0`, `"dropped_forged":0`, `"refs_resolved":0`, `"ref_errors":0`} {
		require.Contains(t, string(raw), k)
	}
}
