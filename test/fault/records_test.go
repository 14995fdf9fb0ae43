package fault_test

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// runRecords is what the workers and the capture saw during the run.
type runRecords struct {
	acked   []acked        // completions whose transaction committed
	aborted []uuid.UUID    // events of completions that must never commit
	fast    []events.Event // fast events received, sentinels excluded
}

// check loads the records into temporary tables and checks them against
// the database in SQL: every acknowledged completion and its durable events
// are there, no event of an aborted completion is anywhere, and every fast
// event received belongs to a committed completion, once.
func (r *runRecords) check(t *testing.T, f *fixture) {
	t.Helper()
	conn, err := f.pool.Acquire(f.ctx)
	require.NoError(t, err)
	defer conn.Release()
	tx, err := conn.Begin(f.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(f.ctx) }()
	_, err = tx.Exec(f.ctx, `
		CREATE TEMP TABLE acked (step_uuid uuid, attempt int, state text) ON COMMIT DROP;
		CREATE TEMP TABLE acked_events (event_id uuid) ON COMMIT DROP;
		CREATE TEMP TABLE aborted_events (event_id uuid) ON COMMIT DROP;
		CREATE TEMP TABLE fast_seen (event_id uuid, event_name text, step_uuid uuid, attempt int, state text)
			ON COMMIT DROP`)
	require.NoError(t, err)
	var ackedRows, ackedEvents, abortedRows, fastRows [][]any
	for _, a := range r.acked {
		ackedRows = append(ackedRows, []any{a.step, a.attempt, a.state})
		for _, id := range a.durable {
			ackedEvents = append(ackedEvents, []any{id})
		}
	}
	for _, id := range r.aborted {
		abortedRows = append(abortedRows, []any{id})
	}
	for _, ev := range r.fast {
		var seq struct {
			WorkflowStep struct {
				Attempts int    `json:"attempts"`
				State    string `json:"state"`
			} `json:"workflow_step"`
		}
		require.NoError(t, json.Unmarshal(ev.Payload.TaskSequenceStep, &seq), "fast event %s", ev.EventID)
		fastRows = append(fastRows, []any{ev.EventID, ev.EventName, ev.Metadata.StepUUID,
			seq.WorkflowStep.Attempts, seq.WorkflowStep.State})
	}
	for _, load := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"acked", []string{"step_uuid", "attempt", "state"}, ackedRows},
		{"acked_events", []string{"event_id"}, ackedEvents},
		{"aborted_events", []string{"event_id"}, abortedRows},
		{"fast_seen", []string{"event_id", "event_name", "step_uuid", "attempt", "state"}, fastRows},
	} {
		_, err := tx.CopyFrom(f.ctx, pgx.Identifier{load.table}, load.cols, pgx.CopyFromRows(load.rows))
		require.NoError(t, err, "loading %s", load.table)
	}
	require.NotEmpty(t, abortedRows, "no aborted completion had events: the abort checks would prove nothing")
	require.NotEmpty(t, fastRows)

	for _, c := range []struct{ name, sql string }{
		{"every acknowledged completion is in the history", `
			SELECT a.* FROM acked a
			WHERE NOT EXISTS (SELECT 1 FROM stepevents.workflow_step_transitions tr
			                  WHERE tr.step_uuid = a.step_uuid AND tr.from_state = 'in_progress'
			                    AND tr.to_state = a.state AND (tr.metadata->>'attempt')::int = a.attempt)`},
		{"every durable event of an acknowledged completion is in the queue", `
			SELECT e.event_id FROM acked_events e
			WHERE NOT EXISTS (SELECT 1 FROM ` + queueTable + ` m WHERE (m.message->>'event_id')::uuid = e.event_id)`},
		{"no event of an aborted completion is in the queue", `
			SELECT m.msg_id, m.message->>'event_id' FROM ` + queueTable + ` m
			JOIN aborted_events e ON e.event_id = (m.message->>'event_id')::uuid`},
		{"no event of an aborted completion arrived on the fast path", `
			SELECT s.* FROM fast_seen s JOIN aborted_events e USING (event_id)`},
		{"no fast event arrived twice", `
			SELECT event_id, count(*) FROM fast_seen GROUP BY 1 HAVING count(*) > 1`},
		{"every fast event belongs to a committed completion that declares it", `
			SELECT s.* FROM fast_seen s
			WHERE NOT EXISTS (
			    SELECT 1 FROM stepevents.workflow_step_transitions tr
			    JOIN stepevents.workflow_steps ws ON ws.step_uuid = tr.step_uuid
			    JOIN stepevents.tasks t ON t.task_uuid = ws.task_uuid
			    JOIN stepevents.event_declarations d ON d.template_id = t.template_id AND d.step_name = ws.name
			    WHERE tr.step_uuid = s.step_uuid AND tr.from_state = 'in_progress' AND tr.to_state = s.state
			      AND (tr.metadata->>'attempt')::int = s.attempt
			      AND d.event_name = s.event_name AND d.delivery_mode IN ('fast', 'broadcast')
			      AND stepevents.should_publish(d.condition, tr.to_state = 'complete',
			              CASE WHEN tr.to_state <> 'complete' THEN tr.to_state = 'waiting_for_retry' END))`},
		{"the fast copy of a broadcast event has its durable copy in the queue", `
			SELECT s.* FROM fast_seen s
			JOIN stepevents.event_declarations d ON d.event_name = s.event_name AND d.delivery_mode = 'broadcast'
			WHERE NOT EXISTS (SELECT 1 FROM ` + queueTable + ` m WHERE (m.message->>'event_id')::uuid = s.event_id)`},
	} {
		rows := queryViolations(t, f.ctx, tx, c.sql)
		require.Empty(t, rows, "run check failed: %s", c.name)
	}
	t.Logf("run checks: %d acknowledged completions, %d of their durable events, %d aborted events, %d fast events",
		len(ackedRows), len(ackedEvents), len(abortedRows), len(fastRows))
}
