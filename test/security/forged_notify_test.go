package security_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// forgedPayment is what an attacker would like subscribers to act on.
var forgedPayment = map[string]any{"order_id": "o-1", "transaction_id": "txn-forged", "amount": 1e6}

// TestForgedNotifyDroppedWithSigningKey: a role with no grant at all (any
// role that can connect may NOTIFY on any channel) sends fake envelopes:
// unsigned, signed with a guessed key, with a garbage signature, and a
// reference to the stash. With a SigningKey the listener drops and counts
// every one; subscribers receive only the real, signed event.
func TestForgedNotifyDroppedWithSigningKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := []byte("publishers and listeners share this key")
	_, forger := e.newRole(t)
	client := newClient(t, e.admin, events.Config{SigningKey: key})
	l, capture := listen(t, e.admin, events.ListenerConfig{SigningKey: key})

	fake := events.Envelope{Events: []json.RawMessage{fakeEvent(t, "payment.processed", forgedPayment)}}
	notify(t, forger, wire(t, fake, nil))
	notify(t, forger, wire(t, fake, []byte("guessed key")))
	notify(t, forger, wire(t, events.Envelope{Refs: []uuid.UUID{uuid.New()}}, nil))
	env, err := json.Marshal(fake)
	require.NoError(t, err)
	notify(t, forger, `{"v":1,"sig":"`+strings.Repeat("0", 64)+`","env":`+string(env)+`}`)

	_, steps := newTask(t, client, e.admin)
	comp := startAndComplete(t, client, e.admin, steps[stepValidate], validateResult)
	ev, ok := capture.WaitForEvent("order.validated", waitTimeout) // committed after the forgeries
	require.True(t, ok)
	require.Equal(t, comp.Published[0].EventID, ev.EventID)
	require.Equal(t, 1, capture.Count(), "only the signed event reaches subscribers")
	capture.RequireNotCaptured(t, "payment.processed")

	h := l.Health(e.ctx)
	require.Equal(t, uint64(5), h.Received)
	require.Equal(t, uint64(4), h.DroppedForged)
	require.Equal(t, uint64(1), h.Decoded)
	require.Zero(t, h.RefsResolved+h.RefErrors, "a forged reference is never looked up")
}

// TestForgedNotifyAcceptedWithoutSigningKey documents the default: with no
// SigningKey, a forged envelope from any role is delivered to subscribers
// like a real one (and a forged reference is looked up). Signing is off by
// default; SECURITY.md says what that means.
func TestForgedNotifyAcceptedWithoutSigningKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, forger := e.newRole(t)
	l, capture := listen(t, e.admin, events.ListenerConfig{})

	notify(t, forger, wire(t, events.Envelope{Events: []json.RawMessage{fakeEvent(t, "payment.processed", forgedPayment)}}, nil))
	notify(t, forger, wire(t, events.Envelope{Refs: []uuid.UUID{uuid.New()}}, nil))
	ev, ok := capture.WaitForEvent("payment.processed", waitTimeout)
	require.True(t, ok, "without a key the forged event is accepted")
	require.JSONEq(t, `{"order_id":"o-1","transaction_id":"txn-forged","amount":1000000}`, string(ev.Payload.Payload))
	barrier(t, e.admin, capture, nil)
	h := l.Health(e.ctx)
	require.Zero(t, h.DroppedForged)
	require.Equal(t, uint64(1), h.RefErrors, "the forged reference was looked up and not found")
}

// TestSignedFastEventsAreReadableAndReplayable documents what signing does
// not do: any role that can connect may LISTEN and read fast payloads
// (they are not encrypted), and may send a captured, correctly signed
// envelope again, which the listener accepts (the signature proves who
// built it, not when). Subscribers deduplicate by event_id.
func TestSignedFastEventsAreReadableAndReplayable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := []byte("publishers and listeners share this key")
	_, forger := e.newRole(t)
	client := newClient(t, e.admin, events.Config{SigningKey: key})
	l, capture := listen(t, e.admin, events.ListenerConfig{SigningKey: key})
	spy, err := pgx.ConnectConfig(e.ctx, forger.Config().ConnConfig.Copy())
	require.NoError(t, err)
	t.Cleanup(func() { spy.Close(context.Background()) })
	_, err = spy.Exec(e.ctx, `LISTEN `+events.DefaultChannel)
	require.NoError(t, err)

	_, steps := newTask(t, client, e.admin)
	comp := startAndComplete(t, client, e.admin, steps[stepValidate], validateResult)
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	n, err := spy.WaitForNotification(ctx)
	require.NoError(t, err)
	require.Contains(t, n.Payload, `"validation_timestamp":"2026-11-28T10:00:00Z"`, "fast payloads are readable by any role")
	_, err = events.DecodeEnvelope([]byte(n.Payload), nil)
	require.NoError(t, err)

	notify(t, forger, n.Payload) // replay
	require.True(t, capture.WaitForEvents(2, waitTimeout), "the replayed envelope was not accepted")
	evs := capture.Events()
	require.Equal(t, comp.Published[0].EventID, evs[0].EventID)
	require.Equal(t, comp.Published[0].EventID, evs[1].EventID, "the replay carries the same event_id")
	require.Zero(t, l.Health(e.ctx).DroppedForged)
}
