-- Invariants of a stepevents database, in plain SQL. Each query below lists
-- violations: on a healthy database every one returns no rows, whatever
-- faults (terminated backends, timeouts, panics, cancellations) hit the
-- workers. test/fault runs them after its randomized run; run them by hand
-- with psql against any database that uses the seed fixture's namespace
-- (the queue is pgmq.q_domain_events_domain_events).
--
-- A committed completion is a transition from in_progress to complete,
-- waiting_for_retry or error. Its metadata carries the attempt, and every
-- event it published carries the step as recorded (task_sequence_step.
-- workflow_step: attempts and state), so the two join on (step, attempt,
-- outcome). Several completions can share that key only after an operator
-- reset; counting per key handles that.

-- invariant: committed completions have exactly their declared durable events
-- For each (step, attempt, outcome, event name): as many queue messages as
-- committed completions for which a durable or broadcast declaration fires
-- (stepevents.should_publish over event_declarations). Rows with expected 0
-- are orphans or events of a rolled-back completion; rows with actual 0 are
-- lost events.
WITH completion AS (
    SELECT tr.step_uuid, (tr.metadata->>'attempt')::int AS attempt, tr.to_state
    FROM stepevents.workflow_step_transitions tr
    WHERE tr.from_state = 'in_progress' AND tr.to_state IN ('complete', 'waiting_for_retry', 'error')
), expected AS (
    SELECT c.step_uuid, c.attempt, c.to_state, d.event_name, count(*) AS n
    FROM completion c
    JOIN stepevents.workflow_steps s ON s.step_uuid = c.step_uuid
    JOIN stepevents.tasks t ON t.task_uuid = s.task_uuid
    JOIN stepevents.event_declarations d ON d.template_id = t.template_id AND d.step_name = s.name
    WHERE d.delivery_mode IN ('durable', 'broadcast')
      AND stepevents.should_publish(d.condition, c.to_state = 'complete',
                                    CASE WHEN c.to_state <> 'complete' THEN c.to_state = 'waiting_for_retry' END)
    GROUP BY 1, 2, 3, 4
), actual AS (
    SELECT (m.message->'metadata'->>'step_uuid')::uuid AS step_uuid,
           (m.message->'payload'->'task_sequence_step'->'workflow_step'->>'attempts')::int AS attempt,
           m.message->'payload'->'task_sequence_step'->'workflow_step'->>'state' AS to_state,
           m.message->>'event_name' AS event_name, count(*) AS n
    FROM pgmq.q_domain_events_domain_events m
    GROUP BY 1, 2, 3, 4
)
SELECT coalesce(e.step_uuid, a.step_uuid) AS step_uuid, coalesce(e.attempt, a.attempt) AS attempt,
       coalesce(e.to_state, a.to_state) AS outcome, coalesce(e.event_name, a.event_name) AS event_name,
       coalesce(e.n, 0) AS expected, coalesce(a.n, 0) AS actual
FROM expected e
FULL JOIN actual a ON a.step_uuid = e.step_uuid AND a.attempt = e.attempt AND a.to_state = e.to_state
                  AND a.event_name = e.event_name
WHERE coalesce(e.n, 0) <> coalesce(a.n, 0);

-- invariant: no duplicate event ids in the queue
SELECT message->>'event_id' AS event_id, count(*) AS copies
FROM pgmq.q_domain_events_domain_events
GROUP BY 1
HAVING count(*) > 1;

-- invariant: no orphan messages
-- Every message names an existing step of its task, under its own name, and
-- a committed completion of that step with the attempt and outcome it carries.
SELECT m.msg_id, m.message->'metadata' AS metadata
FROM pgmq.q_domain_events_domain_events m
WHERE NOT EXISTS (
        SELECT 1 FROM stepevents.workflow_steps s
        WHERE s.step_uuid = (m.message->'metadata'->>'step_uuid')::uuid
          AND s.task_uuid = (m.message->'metadata'->>'task_uuid')::uuid
          AND s.name = m.message->'metadata'->>'step_name')
   OR NOT EXISTS (
        SELECT 1 FROM stepevents.workflow_step_transitions tr
        WHERE tr.step_uuid = (m.message->'metadata'->>'step_uuid')::uuid
          AND tr.from_state = 'in_progress'
          AND tr.to_state = m.message->'payload'->'task_sequence_step'->'workflow_step'->>'state'
          AND (tr.metadata->>'attempt')::int
              = (m.message->'payload'->'task_sequence_step'->'workflow_step'->>'attempts')::int);

-- invariant: messages agree with themselves
-- Headers repeat the body's id and name; execution_result names the same
-- step and says success exactly when the step completed.
SELECT m.msg_id
FROM pgmq.q_domain_events_domain_events m
WHERE m.headers->>'event_id' IS DISTINCT FROM m.message->>'event_id'
   OR m.headers->>'event_name' IS DISTINCT FROM m.message->>'event_name'
   OR m.message->'payload'->'execution_result'->>'step_uuid' IS DISTINCT FROM m.message->'metadata'->>'step_uuid'
   OR (m.message->'payload'->'execution_result'->>'success')::boolean
      IS DISTINCT FROM (m.message->'payload'->'task_sequence_step'->'workflow_step'->>'state' = 'complete');

-- invariant: exactly one most_recent transition per step
SELECT s.step_uuid, count(tr.*) FILTER (WHERE tr.most_recent) AS most_recent_rows
FROM stepevents.workflow_steps s
LEFT JOIN stepevents.workflow_step_transitions tr ON tr.step_uuid = s.step_uuid
GROUP BY s.step_uuid
HAVING count(tr.*) FILTER (WHERE tr.most_recent) <> 1;

-- invariant: sort keys run 1..n and the most recent is the last
SELECT tr.step_uuid, min(tr.sort_key) AS first, max(tr.sort_key) AS last, count(*) AS n,
       max(tr.sort_key) FILTER (WHERE tr.most_recent) AS most_recent
FROM stepevents.workflow_step_transitions tr
GROUP BY tr.step_uuid
HAVING min(tr.sort_key) <> 1 OR max(tr.sort_key) <> count(*)
    OR max(tr.sort_key) FILTER (WHERE tr.most_recent) IS DISTINCT FROM max(tr.sort_key);

-- invariant: each transition starts where the previous one ended, and is allowed
-- The first is the creation (NULL -> pending); every later one is in the
-- state machine's transition table.
SELECT h.step_uuid, h.sort_key, h.from_state, h.to_state, h.previous_to_state
FROM (SELECT tr.*, lag(tr.to_state) OVER (PARTITION BY tr.step_uuid ORDER BY tr.sort_key) AS previous_to_state
      FROM stepevents.workflow_step_transitions tr) h
WHERE h.from_state IS DISTINCT FROM h.previous_to_state
   OR (h.sort_key = 1 AND h.to_state <> 'pending')
   OR (h.sort_key > 1 AND NOT stepevents.step_transition_allowed(h.from_state, h.to_state));

-- invariant: a step's state is its most recent transition's
SELECT s.step_uuid, s.state, tr.to_state
FROM stepevents.workflow_steps s
JOIN stepevents.workflow_step_transitions tr ON tr.step_uuid = s.step_uuid AND tr.most_recent
WHERE tr.to_state <> s.state;

-- invariant: attempts follow the history
-- Since the last reset (error -> pending, attempts back to 0), every start
-- (-> in_progress) counts an attempt and every release (in_progress ->
-- pending) refunds one. Each start and each completion records that count,
-- it never exceeds max_attempts, and the step's attempts is the count after
-- its last transition.
WITH era AS (
    SELECT tr.*, count(*) FILTER (WHERE tr.from_state = 'error' AND tr.to_state = 'pending')
                     OVER (PARTITION BY tr.step_uuid ORDER BY tr.sort_key) AS resets
    FROM stepevents.workflow_step_transitions tr
), counted AS (
    SELECT era.*, sum(CASE WHEN era.to_state = 'in_progress' THEN 1
                           WHEN era.from_state = 'in_progress' AND era.to_state = 'pending' THEN -1
                           ELSE 0 END)
                      OVER (PARTITION BY era.step_uuid, era.resets ORDER BY era.sort_key) AS attempts
    FROM era
)
SELECT c.step_uuid, c.sort_key, c.from_state, c.to_state, c.metadata, c.attempts AS attempts_from_history,
       s.attempts AS step_attempts, s.max_attempts
FROM counted c
JOIN stepevents.workflow_steps s ON s.step_uuid = c.step_uuid
WHERE ((c.to_state = 'in_progress'
        OR (c.from_state = 'in_progress' AND c.to_state IN ('complete', 'waiting_for_retry', 'error')))
       AND ((c.metadata->>'attempt')::int IS DISTINCT FROM c.attempts OR c.attempts > s.max_attempts))
   OR (c.most_recent AND c.attempts <> s.attempts);

-- invariant: the state machine decided every failure
-- A failure waits for a retry exactly when the step is retryable, the
-- caller did not declare it permanent and attempts remain.
SELECT tr.step_uuid, tr.sort_key, tr.to_state, tr.metadata, s.retryable, s.max_attempts
FROM stepevents.workflow_step_transitions tr
JOIN stepevents.workflow_steps s ON s.step_uuid = tr.step_uuid
WHERE tr.from_state = 'in_progress' AND tr.to_state IN ('waiting_for_retry', 'error')
  AND (tr.to_state = 'waiting_for_retry')
      <> (s.retryable AND NOT (tr.metadata->>'permanent')::boolean AND (tr.metadata->>'attempt')::int < s.max_attempts);

-- invariant: a task's state follows from its steps' states
SELECT t.task_uuid, t.state, d.derived
FROM stepevents.tasks t
CROSS JOIN LATERAL (
    SELECT CASE
               WHEN bool_and(s.state IN ('complete', 'resolved_manually')) THEN 'complete'
               WHEN bool_or(s.state = 'error') THEN 'error'
               WHEN bool_and(s.state IN ('complete', 'resolved_manually', 'cancelled')) THEN 'cancelled'
               WHEN bool_or(s.state <> 'pending') THEN 'in_progress'
               ELSE 'pending'
           END AS derived
    FROM stepevents.workflow_steps s WHERE s.task_uuid = t.task_uuid) d
WHERE t.state <> d.derived;

-- invariant: a step counts its parents that are not done
-- unmet_parents (migration 00018) keeps a step out of the claim index until
-- it is 0: it must equal the number of its parents neither complete nor
-- resolved_manually, or a runnable step is never claimed.
SELECT s.step_uuid, s.name, s.unmet_parents, coalesce(u.n, 0) AS unmet_from_edges
FROM stepevents.workflow_steps s
LEFT JOIN (SELECT e.to_step_uuid, count(*) AS n
           FROM stepevents.workflow_step_edges e
           JOIN stepevents.workflow_steps p ON p.step_uuid = e.from_step_uuid
           WHERE p.state NOT IN ('complete', 'resolved_manually')
           GROUP BY e.to_step_uuid) u ON u.to_step_uuid = s.step_uuid
WHERE s.unmet_parents <> coalesce(u.n, 0);
