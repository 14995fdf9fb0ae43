package security_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/eventstest"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/examples/publishers"
	sqlscripts "github.com/stepevents/stepevents/sql"
)

// otherTemplate declares a second namespace, whose queue a consumer of
// domain_events must not touch.
const otherTemplate = `name: other
namespace_name: other_ns
version: 1.0.0
steps:
  - name: only
    handler: {callable: other.only}
    publishes_events:
      - name: other.done
        description: The only step is done
`

// applyOther applies otherTemplate as the operator and publishes one event
// to its queue.
func (e *env) applyOther(t *testing.T) {
	t.Helper()
	tpl, err := template.Load("other.yaml", []byte(otherTemplate))
	require.NoError(t, err)
	require.NoError(t, events.ApplyTemplate(e.ctx, e.admin, tpl))
	admin := newClient(t, e.admin, events.Config{})
	id, err := admin.CreateTask(e.ctx, events.CreateTaskParams{Namespace: "other_ns", Name: "other"})
	require.NoError(t, err)
	steps, err := events.TaskSteps(e.ctx, e.admin, id)
	require.NoError(t, err)
	startAndComplete(t, admin, e.admin, steps[0].StepUUID, `{}`)
	require.Equal(t, []string{"other.done"}, e.queueNames(t, "q_other_ns_domain_events"))
}

// exists reports whether the relation or function signature exists (the
// durable consumer's objects are in a migration of their own).
func (e *env) exists(t *testing.T, regclass, regprocedure string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, e.admin.QueryRow(e.ctx, `SELECT coalesce(to_regclass($1) IS NOT NULL, true)
		AND coalesce(to_regprocedure($2) IS NOT NULL, true)`, nilIfEmpty(regclass), nilIfEmpty(regprocedure)).Scan(&ok))
	return ok
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type message struct {
	MsgID  int64
	ReadCt int32
	Name   string
}

func readQueue(t *testing.T, db events.Executor, q string) []message {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT msg_id, read_ct, message->>'event_name' FROM pgmq.read($1, 30, 100)`, q)
	require.NoError(t, err)
	msgs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[message])
	require.NoError(t, err)
	return msgs
}

// TestConsumerReadsDeletesArchivesItsNamespace: a member of
// stepevents_consumer granted one namespace lists, reads, delays, deletes,
// archives and dead-letters its messages, and records handled events.
func TestConsumerReadsDeletesArchivesItsNamespace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := newClient(t, e.admin, events.Config{})
	for range 2 {
		_, steps := newTask(t, admin, e.admin)
		startAndComplete(t, admin, e.admin, steps[stepValidate], validateResult)
		startAndComplete(t, admin, e.admin, steps[stepPayment], paymentResult)
		startAndComplete(t, admin, e.admin, steps[stepInventory], `{"order_id":"o-1","items_reserved":2}`)
	}
	name, pool := e.newRole(t, "stepevents_consumer")
	e.grantConsumer(t, name, namespace)
	ctx := e.ctx

	listed, err := eventstest.NewDurableEventCapture(pool).Events(ctx, namespace)
	require.NoError(t, err)
	require.Len(t, listed, 4)

	msgs := readQueue(t, pool, queue)
	require.Len(t, msgs, 4)
	require.Equal(t, "payment.processed", msgs[0].Name)
	var ok bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT pgmq.delete($1, $2::bigint)`, queue, msgs[0].MsgID).Scan(&ok))
	require.True(t, ok)
	require.NoError(t, pool.QueryRow(ctx, `SELECT pgmq.archive($1, $2::bigint)`, queue, msgs[1].MsgID).Scan(&ok))
	require.True(t, ok)
	_, err = pool.Exec(ctx, `SELECT * FROM pgmq.set_vt($1, $2::bigint, 0)`, queue, msgs[3].MsgID)
	require.NoError(t, err)
	var length int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT queue_length FROM pgmq.metrics($1)`, queue).Scan(&length))
	require.Equal(t, int64(2), length)

	wantArchive := []string{msgs[1].Name}
	if e.exists(t, "", "stepevents.dead_letter(text,bigint,integer,text)") {
		var dlq int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT stepevents.dead_letter($1, $2, $3, 'poison')`,
			queue, msgs[2].MsgID, msgs[2].ReadCt).Scan(&dlq))
		require.NotZero(t, dlq)
		dead := readQueue(t, pool, queue+"_dlq")
		require.Len(t, dead, 1)
		require.NoError(t, pool.QueryRow(ctx, `SELECT pgmq.archive($1, $2::bigint)`, queue+"_dlq", dead[0].MsgID).Scan(&ok))
		require.True(t, ok)
		require.Equal(t, []string{msgs[2].Name}, e.queueNames(t, "a_"+queue+"_dlq"))
	} else {
		require.NoError(t, pool.QueryRow(ctx, `SELECT pgmq.delete($1, $2::bigint)`, queue, msgs[2].MsgID).Scan(&ok))
	}
	if e.exists(t, "stepevents.consumed_events", "") {
		_, err = pool.Exec(ctx, `INSERT INTO stepevents.consumed_events (consumer, event_id) VALUES ('audit', gen_random_uuid())
			ON CONFLICT (consumer, event_id) DO NOTHING`)
		require.NoError(t, err)
	}
	require.Equal(t, []string{msgs[3].Name}, e.queueNames(t, "q_"+queue))
	require.Equal(t, wantArchive, e.queueNames(t, "a_"+queue))
}

// TestConsumerRefusedEverythingElse: the consumer cannot touch another
// namespace's queues, send to its own queue, rewrite or delete its archive,
// administer queues, or read or change anything in the workflow tables;
// the events API refuses it too. Each attempt fails with 42501 and changes
// nothing.
func TestConsumerRefusedEverythingElse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.applyOther(t)
	admin := newClient(t, e.admin, events.Config{})
	_, steps := newTask(t, admin, e.admin)
	startAndComplete(t, admin, e.admin, steps[stepValidate], validateResult)
	startAndComplete(t, admin, e.admin, steps[stepPayment], paymentResult)
	name, pool := e.newRole(t, "stepevents_consumer")
	e.grantConsumer(t, name, namespace)
	msgs := readQueue(t, pool, queue) // its own namespace: allowed
	require.Len(t, msgs, 1)
	_, err := pool.Exec(e.ctx, `SELECT pgmq.archive($1, $2::bigint)`, queue, msgs[0].MsgID)
	require.NoError(t, err)
	before := takeSnapshot(t, e.admin)

	stmts := []string{
		// another namespace
		`SELECT * FROM pgmq.read('other_ns_domain_events', 30, 10)`,
		`SELECT * FROM pgmq.q_other_ns_domain_events`,
		`SELECT pgmq.delete('other_ns_domain_events', 1::bigint)`,
		`SELECT pgmq.archive('other_ns_domain_events', 1::bigint)`,
		`SELECT * FROM pgmq.read('other_ns_domain_events_dlq', 30, 10)`,
		`SELECT * FROM pgmq.a_other_ns_domain_events`,
		// sending and tampering
		`SELECT * FROM pgmq.send('domain_events_domain_events', '{"event_name":"payment.processed"}'::jsonb)`,
		`SELECT * FROM pgmq.send('other_ns_domain_events', '{}'::jsonb)`,
		`UPDATE pgmq.a_domain_events_domain_events SET message = '{}'`,
		`DELETE FROM pgmq.a_domain_events_domain_events`,
		// queue administration
		`SELECT pgmq.purge_queue('domain_events_domain_events')`,
		`SELECT pgmq.drop_queue('domain_events_domain_events')`,
		`SELECT pgmq.create('evil')`,
		`SELECT * FROM pgmq.list_queues()`,
		`DROP TABLE pgmq.q_domain_events_domain_events`,
		// the workflow
		`SELECT * FROM stepevents.tasks`,
		`SELECT * FROM stepevents.workflow_steps`,
		`SELECT * FROM stepevents.event_declarations`,
		`SELECT event FROM stepevents.fast_event_stash`,
		`UPDATE stepevents.workflow_steps SET state = 'complete'`,
		`SELECT stepevents.start_step(gen_random_uuid())`,
		`SELECT stepevents.record_step_result(gen_random_uuid(), true, '{}', NULL)`,
		`SELECT stepevents.grant_consumer(current_user, 'other_ns')`,
	}
	if e.exists(t, "", "stepevents.dead_letter(text,bigint,integer,text)") {
		stmts = append(stmts, `SELECT stepevents.dead_letter('other_ns_domain_events', 1, 1, 'x')`)
	}
	if e.exists(t, "stepevents.consumed_events", "") {
		stmts = append(stmts, `DELETE FROM stepevents.consumed_events`, `UPDATE stepevents.consumed_events SET consumer = 'x'`)
	}
	requireAllDenied(t, pool, stmts)

	_, err = events.NewClient(e.ctx, pool, &events.Config{Publishers: publishers.All()})
	requireDenied(t, err, "events.NewClient as the consumer")
	_, err = events.StartStep(e.ctx, pool, steps[stepInventory])
	requireDenied(t, err, "events.StartStep as the consumer")
	_, err = eventstest.NewDurableEventCapture(pool).Events(e.ctx, "other_ns")
	requireDenied(t, err, "listing another namespace's queue")
	requireUnchanged(t, e.admin, before, "the consumer's refused attempts")
}

// TestQueueGrantFunctionsCheckNames: grant_consumer and friends refuse a
// namespace that is not one, an unknown role and a namespace without
// queues, changing nothing; a role name full of SQL is quoted, not run;
// revoke_queue_access takes the grant back.
func TestQueueGrantFunctionsCheckNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name, pool := e.newRole(t, "stepevents_consumer")
	before := takeSnapshot(t, e.admin)
	for _, c := range []struct {
		fn, role, ns, code string
	}{
		{"grant_consumer", name, `x'; DROP TABLE stepevents.tasks; --`, "SE005"},
		{"grant_consumer", name, `domain_events"; DROP TABLE stepevents.tasks; --`, "SE005"},
		{"grant_consumer", name, "Domain_Events", "SE005"},
		{"grant_consumer", name, "dömain_events", "SE005"},
		{"grant_consumer", name, "", "SE005"},
		{"grant_producer", name, "abcdefghijklmnopqrstuvwxyz0123", "SE005"},
		{"grant_consumer", name, "nothing_here", "SE001"},
		{"grant_consumer", "no_such_role_" + name, namespace, "SE001"},
		{"grant_producer", `x"; DROP TABLE stepevents.tasks; --`, namespace, "SE001"},
		{"revoke_queue_access", name, "pg_catalog", "SE001"},
	} {
		_, err := e.admin.Exec(e.ctx, `SELECT stepevents.`+c.fn+`($1, $2)`, c.role, c.ns)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "%s(%q, %q): %v", c.fn, c.role, c.ns, err)
		require.Equal(t, c.code, pgErr.Code, "%s(%q, %q): %s", c.fn, c.role, c.ns, pgErr.Message)
	}
	requireUnchanged(t, e.admin, before, "refused grants")

	weird := `se_sec_x"; DROP TABLE stepevents.tasks; --` + name[len("se_sec_"):]
	weirdPool := e.newNamedRole(t, weird, "stepevents_consumer")
	e.grantConsumer(t, weird, namespace)
	require.Empty(t, readQueue(t, weirdPool, queue))
	require.Equal(t, before["relations"], takeSnapshot(t, e.admin)["relations"], "the role name ran as SQL")

	e.grantConsumer(t, name, namespace)
	require.Empty(t, readQueue(t, pool, queue))
	_, err := e.admin.Exec(e.ctx, `SELECT stepevents.revoke_queue_access($1, $2)`, name, namespace)
	require.NoError(t, err)
	_, err = pool.Exec(e.ctx, `SELECT * FROM pgmq.read($1, 30, 1)`, queue)
	requireDenied(t, err, "reading after revoke_queue_access")
	require.Empty(t, readQueue(t, weirdPool, queue), "revoking one role left the other alone")
}

// TestRolesScriptIsIdempotentAndGrantsNewNamespaces: a namespace applied
// after roles.sql ran is closed to the producer (its completion rolls back
// whole: nothing recorded, nothing published) until the script runs again;
// running it again changes nothing else.
func TestRolesScriptIsIdempotentAndGrantsNewNamespaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.applyOther(t)
	_, pool := e.newRole(t, "stepevents_producer")
	client := newClient(t, pool, events.Config{})
	id, err := client.CreateTask(e.ctx, events.CreateTaskParams{Namespace: "other_ns", Name: "other"})
	require.NoError(t, err)
	steps, err := events.TaskSteps(e.ctx, pool, id)
	require.NoError(t, err)
	_, err = events.StartStep(e.ctx, pool, steps[0].StepUUID)
	require.NoError(t, err)
	before := takeSnapshot(t, e.admin)
	_, err = client.CompleteStep(e.ctx, steps[0].StepUUID, []byte(`{}`))
	requireDenied(t, err, "publishing to a namespace granted after roles.sql ran")
	requireUnchanged(t, e.admin, before, "a refused publish")

	e.runRolesScript(t)
	e.runRolesScript(t)
	comp, err := client.CompleteStep(e.ctx, steps[0].StepUUID, []byte(`{}`))
	require.NoError(t, err)
	require.Equal(t, "other.done", comp.Published[0].Name)
	require.Equal(t, []string{"other.done", "other.done"}, e.queueNames(t, "q_other_ns_domain_events"))
}

func (e *env) runRolesScript(t *testing.T) {
	t.Helper()
	_, err := e.admin.Exec(e.ctx, sqlscripts.Roles)
	require.NoError(t, err)
}
