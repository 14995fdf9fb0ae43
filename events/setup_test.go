package events_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/test/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

const (
	fixturePath   = "../test/templates/good/domain_event_publishing.yaml"
	stepValidate  = "domain_events_validate_order"
	stepPayment   = "domain_events_process_payment"
	stepInventory = "domain_events_update_inventory"
	stepNotify    = "domain_events_send_notification"
)

type bundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	client *events.Client
}

// setup gives a test its own database with the seed fixture applied and a
// client that registers the fixture's publishers.
func setup(t *testing.T, cfg *events.Config, opts ...template.Option) *bundle {
	t.Helper()
	ctx := context.Background()
	pool := testdb.New(t)
	tpl, err := template.LoadFile(fixturePath, opts...)
	require.NoError(t, err)
	require.NoError(t, events.ApplyTemplate(ctx, pool, tpl))
	if cfg == nil {
		cfg = &events.Config{}
	}
	if cfg.Publishers == nil {
		cfg.Publishers = publishers.All()
	}
	client, err := events.NewClient(ctx, pool, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close(context.Background())) })
	return &bundle{ctx: ctx, pool: pool, client: client}
}

// newTask creates a fixture task and returns its uuid and steps by name.
// taskOf applies the template yaml (named file in errors) and creates one
// task of it, namespace/name, returning its steps in order.
func (b *bundle) taskOf(t *testing.T, file, yaml, namespace, name string) []events.Step {
	t.Helper()
	tpl, err := template.Load(file, []byte(yaml))
	require.NoError(t, err)
	require.NoError(t, b.client.ApplyTemplate(b.ctx, tpl))
	task, err := b.client.CreateTask(b.ctx, events.CreateTaskParams{Namespace: namespace, Name: name})
	require.NoError(t, err)
	steps, err := events.TaskSteps(b.ctx, b.pool, task)
	require.NoError(t, err)
	return steps
}

func (b *bundle) newTask(t *testing.T) (uuid.UUID, map[string]uuid.UUID) {
	t.Helper()
	ctxJSON, _ := json.Marshal(map[string]any{"order_id": uuid.NewString(), "customer_id": "c-1", "amount": 42.5})
	id, err := b.client.CreateTask(b.ctx, events.CreateTaskParams{
		Namespace: "domain_events", Name: "domain_event_publishing", Context: ctxJSON})
	require.NoError(t, err)
	steps, err := events.TaskSteps(b.ctx, b.pool, id)
	require.NoError(t, err)
	byName := map[string]uuid.UUID{}
	for _, s := range steps {
		byName[s.Name] = s.StepUUID
	}
	return id, byName
}

func (b *bundle) start(t *testing.T, step uuid.UUID) {
	t.Helper()
	_, err := events.StartStep(b.ctx, b.pool, step)
	require.NoError(t, err)
}

func (b *bundle) complete(t *testing.T, step uuid.UUID, result string) *events.Completion {
	t.Helper()
	b.start(t, step)
	comp, err := b.client.CompleteStep(b.ctx, step, json.RawMessage(result))
	require.NoError(t, err)
	return comp
}

// queueRows returns the durable events in the namespace queue, by msg_id.
func (b *bundle) queueRows(t *testing.T) []queued {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT msg_id, message, headers FROM pgmq.q_domain_events_domain_events ORDER BY msg_id`)
	require.NoError(t, err)
	defer rows.Close()
	var out []queued
	for rows.Next() {
		var q queued
		var msg, hdr []byte
		require.NoError(t, rows.Scan(&q.MsgID, &msg, &hdr))
		require.NoError(t, json.Unmarshal(msg, &q.Event))
		q.Raw = msg
		require.NoError(t, json.Unmarshal(hdr, &q.Headers))
		out = append(out, q)
	}
	require.NoError(t, rows.Err())
	return out
}

type queued struct {
	MsgID   int64
	Event   events.Event
	Raw     json.RawMessage
	Headers map[string]string
}

func names(qs []queued) []string {
	out := []string{}
	for _, q := range qs {
		out = append(out, q.Event.EventName)
	}
	return out
}
