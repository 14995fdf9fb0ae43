package fault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/eventstest"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/test/testdb"
)

const (
	fixturePath = "../templates/good/domain_event_publishing.yaml"
	namespace   = "domain_events"
	queueTable  = "pgmq.q_domain_events_domain_events"

	stepValidate  = "domain_events_validate_order"
	stepPayment   = "domain_events_process_payment"
	stepInventory = "domain_events_update_inventory"
	stepNotify    = "domain_events_send_notification"

	// adminApplicationName names the sessions that inject faults and check
	// results; fault injectors never target them.
	adminApplicationName = "fault-admin"

	waitTimeout = 20 * time.Second
)

// stepOrder is the fixture's dependency chain.
var stepOrder = []string{stepValidate, stepPayment, stepInventory, stepNotify}

// fixture is one test's database with the seed template applied.
type fixture struct {
	ctx  context.Context
	url  string
	pool *pgxpool.Pool // superuser, application_name fault-admin
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{ctx: context.Background(), url: testdb.NewURL(t)}
	f.pool = f.newPool(t, adminApplicationName, 8)
	tpl, err := template.LoadFile(fixturePath)
	require.NoError(t, err)
	require.NoError(t, events.ApplyTemplate(f.ctx, f.pool, tpl))
	return f
}

// newPool opens a pool whose sessions carry applicationName, so that a fault
// injector finds their backends in pg_stat_activity, and params (name,
// value pairs of run-time parameters).
func (f *fixture) newPool(t *testing.T, applicationName string, maxConns int32, params ...string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(f.url)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["application_name"] = applicationName
	for i := 0; i+1 < len(params); i += 2 {
		cfg.ConnConfig.RuntimeParams[params[i]] = params[i+1]
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(f.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// newClient returns a client on pool with the fixture's publishers; it is
// closed (its pending fast events sent) when the test ends.
func (f *fixture) newClient(t *testing.T, pool *pgxpool.Pool, mode events.FastMode) *events.Client {
	t.Helper()
	client, err := events.NewClient(f.ctx, pool, &events.Config{FastMode: mode, Publishers: publishers.All()})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		require.NoError(t, client.Close(ctx))
	})
	return client
}

// listen starts a bus, a capture of everything on it and a listener on
// pool; they stop when the test ends.
func (f *fixture) listen(t *testing.T, pool *pgxpool.Pool) (*events.Listener, *eventstest.FastEventCapture) {
	t.Helper()
	bus := events.NewBus(events.BusConfig{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_, err := bus.Close(ctx)
		require.NoError(t, err)
	})
	capture, err := eventstest.NewFastEventCapture(bus)
	require.NoError(t, err)
	t.Cleanup(capture.Close)
	l, err := events.NewListener(pool, bus, events.ListenerConfig{ReconnectDelay: 10 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(f.ctx, waitTimeout)
	defer cancel()
	require.NoError(t, l.Start(ctx))
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	return l, capture
}

// sentinelPrefix starts the name of every marker event sentinel sends.
const sentinelPrefix = "test.sentinel_"

// sentinel NOTIFYs a marker event on the fast channel and waits until the
// capture has it. NOTIFYs are delivered in commit order and the capture
// keeps delivery order, so every fast event committed before the sentinel
// has then been captured: what is not there by now never arrives.
func (f *fixture) sentinel(t *testing.T, capture *eventstest.FastEventCapture) {
	t.Helper()
	name := sentinelPrefix + strings.ReplaceAll(uuid.NewString(), "-", "")
	ev, err := json.Marshal(events.Event{EventID: uuid.New(), EventName: name, EventVersion: events.EventVersion})
	require.NoError(t, err)
	payload, err := json.Marshal(map[string]any{"v": 1, "env": map[string]any{"events": []json.RawMessage{ev}}})
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, `SELECT pg_notify($1, $2)`, events.DefaultChannel, string(payload))
	require.NoError(t, err)
	_, ok := capture.WaitForEvent(name, waitTimeout)
	require.True(t, ok, "sentinel %s not received within %s", name, waitTimeout)
}

// order is one task of the fixture: its order id and its steps by name.
type order struct {
	task  uuid.UUID
	id    string
	steps map[string]uuid.UUID
}

// newOrder creates a fixture task through dbtx.
func newOrder(ctx context.Context, dbtx events.Executor) (order, error) {
	o := order{id: uuid.NewString(), steps: map[string]uuid.UUID{}}
	input, err := json.Marshal(map[string]any{"order_id": o.id, "customer_id": "c-1", "amount": 42.5})
	if err != nil {
		return o, fmt.Errorf("error encoding task context: %w", err)
	}
	o.task, err = events.CreateTask(ctx, dbtx, events.CreateTaskParams{Namespace: namespace,
		Name: "domain_event_publishing", Context: input})
	if err != nil {
		return o, fmt.Errorf("error creating an order task: %w", err)
	}
	steps, err := events.TaskSteps(ctx, dbtx, o.task)
	if err != nil {
		return o, fmt.Errorf("error listing the steps of task %s: %w", o.task, err)
	}
	for _, s := range steps {
		o.steps[s.Name] = s.StepUUID
	}
	return o, nil
}

// resultFor is a successful result of step that satisfies the schemas of
// every event the step declares.
func resultFor(step, orderID string) json.RawMessage {
	var v map[string]any
	switch step {
	case stepValidate:
		v = map[string]any{"order_id": orderID, "validation_timestamp": "2026-11-28T10:00:00Z"}
	case stepPayment:
		v = map[string]any{"transaction_id": "txn-" + orderID[:8], "amount": 42.5, "currency": "EUR"}
	case stepInventory:
		v = map[string]any{"order_id": orderID, "items_reserved": 2}
	default:
		v = map[string]any{"channel": "sms"}
	}
	b, _ := json.Marshal(v)
	return b
}

// terminate ends the backend pid and waits (server side, up to
// waitTimeout) until it has exited, so the fault has happened when it
// returns. A backend that was already gone (another fault got there first)
// counts as terminated.
func terminate(ctx context.Context, dbtx events.Executor, pid uint32) error {
	var gone bool
	err := dbtx.QueryRow(ctx, `
		SELECT pg_terminate_backend($1, $2)
		       OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`,
		int64(pid), waitTimeout.Milliseconds()).Scan(&gone)
	if err != nil {
		return fmt.Errorf("error terminating backend %d: %w", pid, err)
	}
	if !gone {
		return fmt.Errorf("backend %d did not exit within %s", pid, waitTimeout)
	}
	return nil
}

// isConnectionError reports an error that means the session is gone: the
// server terminated it (SQLSTATE class 57P, or a connection exception,
// class 08) or the connection broke. Such an error leaves the transaction
// uncommitted, so the caller may retry on a fresh connection.
func isConnectionError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "08")
	}
	var netErr net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.As(err, &netErr)
}

// eventually polls cond every few milliseconds until it holds, failing t
// after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// queuedEventIDs counts the messages of the namespace queue by event_id.
func (f *fixture) queuedEventIDs(t *testing.T) map[uuid.UUID]int {
	t.Helper()
	rows, err := f.pool.Query(f.ctx, `SELECT (message->>'event_id')::uuid FROM `+queueTable)
	require.NoError(t, err)
	defer rows.Close()
	out := map[uuid.UUID]int{}
	for rows.Next() {
		var id uuid.UUID
		require.NoError(t, rows.Scan(&id))
		out[id]++
	}
	require.NoError(t, rows.Err())
	return out
}
