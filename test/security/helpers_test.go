package security_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/eventstest"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/examples/publishers"
	sqlscripts "github.com/stepevents/stepevents/sql"
	"github.com/stepevents/stepevents/test/testdb"
)

const (
	fixturePath = "../templates/good/domain_event_publishing.yaml"
	namespace   = "domain_events"
	queue       = namespace + "_domain_events"

	stepValidate  = "domain_events_validate_order"
	stepPayment   = "domain_events_process_payment"
	stepInventory = "domain_events_update_inventory"

	validateResult = `{"order_id":"o-1","validation_timestamp":"2026-11-28T10:00:00Z"}`
	paymentResult  = `{"transaction_id":"txn-1","amount":42.5,"currency":"EUR"}`

	// codeDenied is insufficient_privilege: what PostgreSQL answers for
	// every refused privilege (table, column, schema, function, ownership).
	codeDenied = "42501"

	// waitTimeout bounds waits for things that happen promptly; no test
	// asserts on elapsed time.
	waitTimeout = 10 * time.Second
)

// env is one test's database: a superuser pool (the operator, who migrated,
// applied the fixture template and ran sql/roles.sql) and helpers to act as
// other roles.
type env struct {
	ctx   context.Context
	admin *pgxpool.Pool
}

// newEnv gives a test its own migrated database with the seed fixture
// applied and the least-privilege roles installed.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	admin := testdb.New(t)
	tpl, err := template.LoadFile(fixturePath)
	require.NoError(t, err)
	require.NoError(t, events.ApplyTemplate(ctx, admin, tpl))
	_, err = admin.Exec(ctx, sqlscripts.Roles) // one multi-statement Exec: one transaction
	require.NoError(t, err, "running sql/roles.sql")
	return &env{ctx: ctx, admin: admin}
}

// newRole creates a LOGIN role, member of groups, with a unique name, and
// returns a pool connected as it. The role is dropped when the test ends.
func (e *env) newRole(t *testing.T, groups ...string) (string, *pgxpool.Pool) {
	t.Helper()
	name := "se_sec_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	return name, e.newNamedRole(t, name, groups...)
}

// newNamedRole is newRole with a given name (quoted, so any name works).
func (e *env) newNamedRole(t *testing.T, name string, groups ...string) *pgxpool.Pool {
	t.Helper()
	q := "CREATE ROLE " + pgx.Identifier{name}.Sanitize() + " LOGIN"
	if len(groups) > 0 {
		quoted := make([]string, len(groups))
		for i, g := range groups {
			quoted[i] = pgx.Identifier{g}.Sanitize()
		}
		q += " IN ROLE " + strings.Join(quoted, ", ")
	}
	_, err := e.admin.Exec(e.ctx, q)
	require.NoError(t, err)
	t.Cleanup(func() {
		// Its grants in this database go first; the role has none elsewhere.
		ident := pgx.Identifier{name}.Sanitize()
		_, err := e.admin.Exec(context.Background(), "DROP OWNED BY "+ident+"; DROP ROLE "+ident)
		require.NoError(t, err, "dropping role %s", name)
	})
	cfg := e.admin.Config().Copy()
	cfg.ConnConfig.User = name
	cfg.ConnConfig.Password = ""
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(e.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close) // runs before the role is dropped
	return pool
}

// grantConsumer runs stepevents.grant_consumer as the operator.
func (e *env) grantConsumer(t *testing.T, role, ns string) {
	t.Helper()
	_, err := e.admin.Exec(e.ctx, `SELECT stepevents.grant_consumer($1, $2)`, role, ns)
	require.NoError(t, err)
}

// newClient returns a Client on pool with the fixture's publishers.
func newClient(t *testing.T, pool *pgxpool.Pool, cfg events.Config) *events.Client {
	t.Helper()
	if cfg.Publishers == nil {
		cfg.Publishers = publishers.All()
	}
	c, err := events.NewClient(context.Background(), pool, &cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close(context.Background())) })
	return c
}

// newTask creates a fixture task through client and returns its uuid and
// its steps by name, read through pool.
func newTask(t *testing.T, client *events.Client, pool *pgxpool.Pool) (uuid.UUID, map[string]uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	ctxJSON, err := json.Marshal(map[string]any{"order_id": uuid.NewString(), "customer_id": "c-1", "amount": 42.5})
	require.NoError(t, err)
	id, err := client.CreateTask(ctx, events.CreateTaskParams{Namespace: namespace, Name: "domain_event_publishing",
		Context: ctxJSON})
	require.NoError(t, err)
	steps, err := events.TaskSteps(ctx, pool, id)
	require.NoError(t, err)
	byName := map[string]uuid.UUID{}
	for _, s := range steps {
		byName[s.Name] = s.StepUUID
	}
	return id, byName
}

// startAndComplete claims step and records result through client.
func startAndComplete(t *testing.T, client *events.Client, pool *pgxpool.Pool, step uuid.UUID, result string) *events.Completion {
	t.Helper()
	ctx := context.Background()
	_, err := events.StartStep(ctx, pool, step)
	require.NoError(t, err)
	comp, err := client.CompleteStep(ctx, step, json.RawMessage(result))
	require.NoError(t, err)
	require.Empty(t, comp.Errors)
	return comp
}

// requireDenied asserts err is PostgreSQL's insufficient_privilege (42501),
// wherever it is in the chain.
func requireDenied(t *testing.T, err error, what string) {
	t.Helper()
	require.Error(t, err, "%s was allowed", what)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "%s: not a PostgreSQL error: %v", what, err)
	require.Equal(t, codeDenied, pgErr.Code, "%s: %s", what, pgErr.Message)
}

// requireAllDenied runs each statement as pool, each in its own implicit
// transaction, and asserts every one is refused with 42501.
func requireAllDenied(t *testing.T, pool *pgxpool.Pool, stmts []string) {
	t.Helper()
	for _, q := range stmts {
		_, err := pool.Exec(context.Background(), q)
		requireDenied(t, err, q)
	}
}

// listen starts a Listener on pool publishing to a fresh bus, with a
// capture of everything the bus delivers. Stopped when the test ends.
func listen(t *testing.T, pool *pgxpool.Pool, cfg events.ListenerConfig) (*events.Listener, *eventstest.FastEventCapture) {
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
	l, err := events.NewListener(pool, bus, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, l.Start(ctx))
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	return l, capture
}

// wire builds a NOTIFY payload as a forger would: the envelope, and an
// HMAC-SHA256 of it when key is set (the documented wire format).
func wire(t *testing.T, env events.Envelope, key []byte) string {
	t.Helper()
	raw, err := json.Marshal(env)
	require.NoError(t, err)
	w := map[string]any{"v": 1, "env": json.RawMessage(raw)}
	if key != nil {
		m := hmac.New(sha256.New, key)
		m.Write(raw)
		w["sig"] = hex.EncodeToString(m.Sum(nil))
	}
	out, err := json.Marshal(w)
	require.NoError(t, err)
	return string(out)
}

// fakeEvent is an event as a forger would write it.
func fakeEvent(t *testing.T, name string, payload any) json.RawMessage {
	t.Helper()
	p, err := json.Marshal(payload)
	require.NoError(t, err)
	raw, err := json.Marshal(events.Event{EventID: uuid.New(), EventName: name, EventVersion: events.EventVersion,
		Payload: events.EventPayload{Payload: p}})
	require.NoError(t, err)
	return raw
}

// notify sends payload on the fast-event channel as pool's role.
func notify(t *testing.T, pool *pgxpool.Pool, payload string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `SELECT pg_notify($1, $2)`, events.DefaultChannel, payload)
	require.NoError(t, err)
}

// barrier notifies a marker event (signed with key when set) and waits for
// it: every notification committed before it has then been through the
// listener and the bus (NOTIFY delivers in commit order).
// notified waits until client has sent every fast copy it routed. After-commit
// fast events leave asynchronously through the notifier: a barrier sent
// before them could overtake them.
func notified(t *testing.T, client *events.Client) {
	t.Helper()
	require.Eventually(t, func() bool {
		s := client.Stats()
		return s.FastNotified+s.FastDeliveryErrors >= s.FastRouted+s.BroadcastRouted
	}, waitTimeout, 5*time.Millisecond, "the notifier did not send every routed fast event")
}

func barrier(t *testing.T, pool *pgxpool.Pool, capture *eventstest.FastEventCapture, key []byte) {
	t.Helper()
	name := "test.barrier_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	notify(t, pool, wire(t, events.Envelope{Events: []json.RawMessage{fakeEvent(t, name, nil)}}, key))
	_, ok := capture.WaitForEvent(name, waitTimeout)
	require.True(t, ok, "barrier %s not received", name)
}

// countNamed counts the captured events named name.
func countNamed(evs []events.Event, name string) int {
	n := 0
	for _, ev := range evs {
		if ev.EventName == name {
			n++
		}
	}
	return n
}

// queueNames lists the event names in a queue table, by msg_id, as the
// operator.
func (e *env) queueNames(t *testing.T, table string) []string {
	t.Helper()
	rows, err := e.admin.Query(e.ctx, fmt.Sprintf(`SELECT message->>'event_name' FROM pgmq.%s ORDER BY msg_id`,
		pgx.Identifier{table}.Sanitize()))
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	if names == nil {
		names = []string{}
	}
	return names
}
