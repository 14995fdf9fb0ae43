package security_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/migrations"
)

// TestProducerRecordsAndPublishes: a member of stepevents_producer does a
// worker's whole job through events.Client: create a task, claim, release,
// complete and fail steps, read readiness, and publish durable, fast and
// broadcast events.
func TestProducerRecordsAndPublishes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, pool := e.newRole(t, "stepevents_producer")
	client := newClient(t, pool, events.Config{FastMode: events.FastInTransaction})
	ctx := e.ctx

	taskID, steps := newTask(t, client, pool)
	ready, err := events.Readiness(ctx, pool, taskID)
	require.NoError(t, err)
	require.Len(t, ready, 4)

	_, err = events.StartStep(ctx, pool, steps[stepValidate])
	require.NoError(t, err)
	released, err := events.ReleaseStep(ctx, pool, steps[stepValidate], "shutting down")
	require.NoError(t, err)
	require.Equal(t, "pending", released.State)

	comp := startAndComplete(t, client, pool, steps[stepValidate], validateResult)
	require.Equal(t, "order.validated", comp.Published[0].Name)
	comp = startAndComplete(t, client, pool, steps[stepPayment], paymentResult)
	require.Equal(t, "payment.processed", comp.Published[0].Name)
	require.NotZero(t, comp.Published[0].MsgID)

	_, err = events.StartStep(ctx, pool, steps[stepInventory])
	require.NoError(t, err)
	comp, err = client.FailStep(ctx, steps[stepInventory], events.Failure{Message: "warehouse down", Code: "E1"})
	require.NoError(t, err)
	require.Equal(t, "waiting_for_retry", comp.Step.State)
	require.Equal(t, "inventory.updated", comp.Published[0].Name)

	require.Equal(t, []string{"payment.processed", "inventory.updated"}, e.queueNames(t, "q_"+queue))
	// An oversized fast event is stashed (INSERT) after pruning (DELETE).
	_, steps2 := newTask(t, client, pool)
	big, err := json.Marshal(map[string]any{"order_id": "o-2", "validation_timestamp": "2026-11-28T10:00:00Z",
		"notes": strings.Repeat("x", 9000)})
	require.NoError(t, err)
	comp = startAndComplete(t, client, pool, steps2[stepValidate], string(big))
	require.True(t, comp.Published[0].ByReference)

	// The runner's way: claim with claim_ready_steps, record under the claim.
	_, steps3 := newTask(t, client, pool)
	claimed := claimAs(t, pool, "domain_events.validate_order")
	require.Equal(t, steps3[stepValidate], claimed.StepUUID)
	comp, err = client.CompleteClaimedStep(ctx, claimed.StepUUID, claimed.ClaimID, []byte(validateResult))
	require.NoError(t, err)
	require.Equal(t, "order.validated", comp.Published[0].Name)

	// A recording that fails in Go leaves the producer's transaction aborted
	// (stepevents.abort_transaction): the producer may call it.
	requireCanAbort(t, pool)
}

// requireCanAbort checks that pool's role may run stepevents.abort_transaction:
// it answers SE007 (by design), not 42501.
func requireCanAbort(t *testing.T, pool interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `SELECT stepevents.abort_transaction('test')`)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "SE007", pgErr.Code, "abort_transaction as the producer: %v", err)
}

// claimAs claims one ready step of handler as the runner does.
func claimAs(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, handler string) events.Step {
	t.Helper()
	var s events.Step
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT step_uuid, claim_id FROM stepevents.claim_ready_steps(1, ARRAY[$1::text])`, handler).
		Scan(&s.StepUUID, &s.ClaimID), "claiming a %s step", handler)
	return s
}

// TestProducerRefusedEverythingElse: the producer can see msg_ids (pgmq.send
// returns them) but no payload, and may not consume, purge, drop or create
// queues, apply templates, take operator actions, delete workflow rows,
// read the stash, run migrations or read other schemas. Each attempt fails
// with 42501 and changes nothing.
func TestProducerRefusedEverythingElse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.admin.Exec(e.ctx, `CREATE SCHEMA payroll; CREATE TABLE payroll.salaries (who text, amount numeric);
		INSERT INTO payroll.salaries VALUES ('ceo', 1e6)`)
	require.NoError(t, err)
	admin := newClient(t, e.admin, events.Config{})
	_, steps := newTask(t, admin, e.admin)
	startAndComplete(t, admin, e.admin, steps[stepValidate], validateResult)
	startAndComplete(t, admin, e.admin, steps[stepPayment], paymentResult)
	_, pool := e.newRole(t, "stepevents_producer")
	before := takeSnapshot(t, e.admin)

	var ids []int64
	rows, err := pool.Query(e.ctx, `SELECT msg_id FROM pgmq.q_domain_events_domain_events`)
	require.NoError(t, err, "msg_id alone is readable: pgmq.send inserts RETURNING msg_id")
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, ids, 1)

	requireAllDenied(t, pool, []string{
		// queue payloads and consumption
		`SELECT message FROM pgmq.q_domain_events_domain_events`,
		`SELECT * FROM pgmq.q_domain_events_domain_events`,
		`SELECT * FROM pgmq.read('domain_events_domain_events', 30, 10)`,
		`SELECT * FROM pgmq.pop('domain_events_domain_events')`,
		`SELECT pgmq.delete('domain_events_domain_events', 1::bigint)`,
		`SELECT pgmq.archive('domain_events_domain_events', 1::bigint)`,
		`SELECT * FROM pgmq.set_vt('domain_events_domain_events', 1::bigint, 0)`,
		`DELETE FROM pgmq.q_domain_events_domain_events`,
		`UPDATE pgmq.q_domain_events_domain_events SET vt = now()`,
		`SELECT * FROM pgmq.a_domain_events_domain_events`,
		`SELECT * FROM pgmq.q_domain_events_domain_events_dlq`,
		`SELECT * FROM pgmq.send('domain_events_domain_events_dlq', '{}'::jsonb)`,
		// queue administration
		`SELECT pgmq.purge_queue('domain_events_domain_events')`,
		`SELECT pgmq.drop_queue('domain_events_domain_events')`,
		`SELECT pgmq.create('evil')`,
		`DROP TABLE pgmq.q_domain_events_domain_events`,
		// templates, operator actions, destructive DML and DDL
		`SELECT stepevents.apply_template('evil', 'x', '1.0.0', '', NULL, '{}', '[]', '[]')`,
		`UPDATE stepevents.event_declarations SET delivery_mode = 'fast'`,
		`INSERT INTO stepevents.task_templates (namespace, name, version, definition) VALUES ('evil', 'x', '1.0.0', '{}')`,
		`SELECT stepevents.resolve_step(gen_random_uuid(), '')`,
		`SELECT stepevents.reset_step(gen_random_uuid(), '')`,
		`SELECT stepevents.cancel_step(gen_random_uuid(), '')`,
		`SELECT stepevents.grant_consumer(current_user, 'domain_events')`,
		`SELECT stepevents.revoke_queue_access('stepevents_producer', 'domain_events')`,
		`DELETE FROM stepevents.tasks`,
		`DELETE FROM stepevents.workflow_step_transitions`,
		`TRUNCATE stepevents.workflow_steps`,
		`DROP TABLE stepevents.tasks`,
		`ALTER TABLE stepevents.workflow_steps ADD COLUMN evil int`,
		`CREATE TABLE stepevents.evil (a int)`,
		`CREATE FUNCTION stepevents.evil() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
		// what belongs to others
		`SELECT event FROM stepevents.fast_event_stash`,
		`SELECT * FROM public.stepevents_migrations`,
		`SELECT * FROM payroll.salaries`,
		`SET ROLE postgres`,
	})

	tpl, err := template.LoadFile(fixturePath)
	require.NoError(t, err)
	tpl.Version = "2.0.0"
	requireDenied(t, events.ApplyTemplate(e.ctx, pool, tpl), "events.ApplyTemplate")
	_, err = events.ResolveStep(e.ctx, pool, steps[stepPayment], "")
	requireDenied(t, err, "events.ResolveStep")
	_, err = events.CancelStep(e.ctx, pool, uuid.New(), "")
	requireDenied(t, err, "events.CancelStep")
	requireDenied(t, migrations.Migrate(context.Background(), pool), "migrations.Migrate")
	requireUnchanged(t, e.admin, before, "the producer's refused attempts")
}
