package ruby_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/test/testdb"
)

const (
	fixturePath  = "../templates/good/domain_event_publishing.yaml"
	namespace    = "domain_events"
	stepValidate = "domain_events_validate_order"
	stepPayment  = "domain_events_process_payment"
	stepInvent   = "domain_events_update_inventory"
	stepNotify   = "domain_events_send_notification"
)

// bundle is the Go publishing side: a fresh database with the seed fixture
// applied, its URL for Ruby, and a client with the fixture's publishers.
type bundle struct {
	ctx    context.Context
	url    string
	pool   *pgxpool.Pool
	client *events.Client
}

func setup(t *testing.T, cfg events.Config) *bundle {
	t.Helper()
	rubyBin(t) // skip (or fail in CI) before creating a database
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	tpl, err := template.LoadFile(fixturePath)
	require.NoError(t, err)
	require.NoError(t, events.ApplyTemplate(ctx, pool, tpl))
	cfg.Publishers = publishers.All()
	client, err := events.NewClient(ctx, pool, &cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close(context.Background())) })
	return &bundle{ctx: ctx, url: url, pool: pool, client: client}
}

// task is one fixture task: its uuid and its steps by name.
type task struct {
	id    uuid.UUID
	steps map[string]uuid.UUID
}

func (b *bundle) newTask(t *testing.T) task {
	t.Helper()
	ctxJSON, err := json.Marshal(map[string]any{"order_id": uuid.NewString(), "customer_id": "c-1", "amount": 42.5})
	require.NoError(t, err)
	id, err := b.client.CreateTask(b.ctx, events.CreateTaskParams{Namespace: namespace,
		Name: "domain_event_publishing", Context: ctxJSON})
	require.NoError(t, err)
	steps, err := events.TaskSteps(b.ctx, b.pool, id)
	require.NoError(t, err)
	tk := task{id: id, steps: map[string]uuid.UUID{}}
	for _, s := range steps {
		tk.steps[s.Name] = s.StepUUID
	}
	return tk
}

// fastOf returns what the logging subscriber should print for the fast
// copies (fast and broadcast modes) a completion published.
func fastOf(tk task, step string, comp *events.Completion) []loggedEvent {
	var out []loggedEvent
	for _, p := range comp.Published {
		if p.Mode == template.DeliveryFast || p.Mode == template.DeliveryBroadcast {
			out = append(out, loggedEvent{p.Name, p.EventID.String(), tk.id.String(), step, namespace})
		}
	}
	return out
}

func (b *bundle) complete(t *testing.T, tk task, step, result string) *events.Completion {
	t.Helper()
	_, err := events.StartStep(b.ctx, b.pool, tk.steps[step])
	require.NoError(t, err)
	comp, err := b.client.CompleteStep(b.ctx, tk.steps[step], json.RawMessage(result))
	require.NoError(t, err)
	require.Empty(t, comp.Errors)
	return comp
}

func (b *bundle) failRetryable(t *testing.T, tk task, step string) *events.Completion {
	t.Helper()
	_, err := events.StartStep(b.ctx, b.pool, tk.steps[step])
	require.NoError(t, err)
	comp, err := b.client.FailStep(b.ctx, tk.steps[step], events.Failure{Message: "gateway timeout", Code: "TIMEOUT"})
	require.NoError(t, err)
	require.Equal(t, "waiting_for_retry", comp.Step.State)
	return comp
}

// scenario is what publishScenario published.
type scenario struct {
	// fast are the fast copies (fast and broadcast events) in publishing order.
	fast []loggedEvent
	// byReference counts those too big for NOTIFY, sent as references.
	byReference int
}

// publishScenario runs two orders through the fixture: 5 fast events
// (order.validated twice, payment.processed, notification.sent,
// payment.failed.retryable; 4 successes, 1 failure). The first
// order.validated carries a result over 8 KB, so it goes by reference
// through stepevents.fast_event_stash (and so does the next step's event,
// whose step context holds that result as a dependency result).
func (b *bundle) publishScenario(t *testing.T) scenario {
	t.Helper()
	var sc scenario
	add := func(tk task, step string, comp *events.Completion) {
		sc.fast = append(sc.fast, fastOf(tk, step, comp)...)
		for _, p := range comp.Published {
			if p.ByReference {
				sc.byReference++
			}
		}
	}
	a := b.newTask(t)
	big := `{"order_id":"o-big","validation_timestamp":"2026-11-28T10:00:00Z","notes":"` + strings.Repeat("x", 9000) + `"}`
	comp := b.complete(t, a, stepValidate, big)
	require.Len(t, comp.Published, 1)
	require.True(t, comp.Published[0].ByReference, "a result over 8 KB makes the fast copy go by reference")
	add(a, stepValidate, comp)
	add(a, stepPayment, b.complete(t, a, stepPayment, `{"transaction_id":"txn-1","amount":42.5}`))
	add(a, stepInvent, b.complete(t, a, stepInvent, `{"order_id":"o-big","items_reserved":2}`))
	add(a, stepNotify, b.complete(t, a, stepNotify, `{"channel":"sms"}`))

	c := b.newTask(t)
	add(c, stepValidate, b.complete(t, c, stepValidate, `{"order_id":"o-2","validation_timestamp":"2026-11-28T10:00:00Z"}`))
	add(c, stepPayment, b.failRetryable(t, c, stepPayment))

	names := make([]string, 0, len(sc.fast))
	for _, e := range sc.fast {
		names = append(names, e.Name)
	}
	require.Equal(t, []string{"order.validated", "payment.processed", "notification.sent", "order.validated",
		"payment.failed.retryable"}, names, "inventory.updated is durable only")
	return sc
}
