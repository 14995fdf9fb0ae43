-- Steps behind a failed or cancelled step leave the claim order.
--
-- A step whose parent is in error (or cancelled) stays pending until an
-- operator resets or resolves that parent, which may be never. It sat in
-- workflow_steps_claim_order_idx all the while, so every claim walked past
-- it again, and every task that ended in error added such steps for good:
-- claims slowed down with the number of failed tasks ever (measured in
-- review: 36-44 ms per claim past 20,000 such steps).
--
-- workflow_steps.blocked marks a step that descends from a step in error or
-- cancelled, in its task's DAG; the claim index leaves blocked steps out.
-- refresh_task_state, which every state change calls under the task's row
-- lock, recomputes the marks of the task's steps when one of them is in
-- error or cancelled or marked blocked (so a reset or resolve clears them),
-- and skips the work otherwise: the success path of a healthy task runs
-- one aggregate as before. blocked only hides steps from the claim's index
-- walk; the claim still checks every parent and readiness itself.
--
-- Marks are written with SKIP LOCKED: a step another transaction holds is
-- left for that transaction's own refresh_task_state, which runs after its
-- state change under the task lock and sees the latest states. (Waiting
-- for it instead could deadlock: it may be waiting for this task's lock.)

-- +goose Up
ALTER TABLE stepevents.workflow_steps ADD COLUMN blocked boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN stepevents.workflow_steps.blocked IS
    'descends from a step in error or cancelled (maintained by refresh_task_state): left out of the claim index';

-- +goose StatementBegin
-- refresh_blocked marks the steps of a task that descend from a step in
-- error or cancelled, and unmarks the others, skipping rows other
-- transactions hold (see above). The caller holds the task's row lock.
CREATE FUNCTION stepevents.refresh_blocked(p_task_uuid uuid)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH RECURSIVE behind(step_uuid) AS (
        SELECT e.to_step_uuid
        FROM stepevents.workflow_step_edges e
        JOIN stepevents.workflow_steps p ON p.step_uuid = e.from_step_uuid
        WHERE e.task_uuid = p_task_uuid AND p.state IN ('error', 'cancelled')
      UNION
        SELECT e.to_step_uuid
        FROM stepevents.workflow_step_edges e
        JOIN behind b ON e.from_step_uuid = b.step_uuid
    ), wrong AS (
        SELECT s.step_uuid
        FROM stepevents.workflow_steps s
        WHERE s.task_uuid = p_task_uuid
          AND s.blocked IS DISTINCT FROM (s.step_uuid IN (SELECT step_uuid FROM behind))
        FOR UPDATE OF s SKIP LOCKED
    )
    UPDATE stepevents.workflow_steps s
    SET blocked = NOT s.blocked
    FROM wrong
    WHERE s.step_uuid = wrong.step_uuid;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.refresh_task_state(p_task_uuid uuid)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_blocking boolean; -- a step is in error or cancelled
    v_blocked boolean;  -- a step is marked blocked
BEGIN
    -- Lock the task first, then aggregate in a fresh statement: under READ
    -- COMMITTED this sees sibling steps committed while we waited for the lock.
    PERFORM 1 FROM stepevents.tasks WHERE task_uuid = p_task_uuid FOR UPDATE;

    SELECT CASE
        WHEN bool_and(state IN ('complete', 'resolved_manually')) THEN 'complete'
        WHEN bool_or(state = 'error') THEN 'error'
        WHEN bool_and(state IN ('complete', 'resolved_manually', 'cancelled')) THEN 'cancelled'
        WHEN bool_or(state <> 'pending') THEN 'in_progress'
        ELSE 'pending'
    END, bool_or(state IN ('error', 'cancelled')), bool_or(blocked)
    INTO v_state, v_blocking, v_blocked
    FROM stepevents.workflow_steps WHERE task_uuid = p_task_uuid;

    -- Only a task with a failed or cancelled step has blocked steps.
    IF v_blocking OR v_blocked THEN
        PERFORM stepevents.refresh_blocked(p_task_uuid);
    END IF;

    UPDATE stepevents.tasks
    SET state = v_state,
        updated_at = now(),
        completed_at = CASE WHEN v_state = 'complete' THEN now() END
    WHERE task_uuid = p_task_uuid AND state IS DISTINCT FROM v_state;
    RETURN v_state;
END
$$;
-- +goose StatementEnd

-- Existing failed tasks: mark what is behind their failed steps.
SELECT stepevents.refresh_blocked(t.task_uuid)
FROM stepevents.tasks t
WHERE EXISTS (SELECT 1 FROM stepevents.workflow_steps s
              WHERE s.task_uuid = t.task_uuid AND s.state IN ('error', 'cancelled'));

DROP INDEX stepevents.workflow_steps_claim_order_idx;
CREATE INDEX workflow_steps_claim_order_idx ON stepevents.workflow_steps (created_at, task_uuid, position)
    WHERE state IN ('pending', 'waiting_for_retry') AND NOT blocked;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.next_claimable_step(p_handlers text[], p_skip uuid[])
RETURNS uuid
LANGUAGE plpgsql
SET enable_sort = off
AS $$
DECLARE
    v_step uuid;
BEGIN
    SELECT s.step_uuid INTO v_step
    FROM stepevents.workflow_steps s
    WHERE s.state IN ('pending', 'waiting_for_retry') AND NOT s.blocked
      AND (p_handlers IS NULL OR s.handler = ANY (p_handlers))
      AND (s.next_retry_at IS NULL OR s.next_retry_at <= now())
      AND (s.attempts = 0 OR (s.retryable AND NOT s.retry_blocked AND s.attempts < s.max_attempts))
      AND NOT EXISTS (
          SELECT 1
          FROM stepevents.workflow_step_edges e
          JOIN stepevents.workflow_steps ps ON ps.step_uuid = e.from_step_uuid
          WHERE e.to_step_uuid = s.step_uuid AND ps.state NOT IN ('complete', 'resolved_manually'))
      AND s.step_uuid <> ALL (p_skip)
    ORDER BY s.created_at, s.task_uuid, s.position
    LIMIT 1
    FOR UPDATE OF s SKIP LOCKED;
    RETURN v_step;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'stepevents_producer') THEN
        REVOKE ALL ON FUNCTION stepevents.refresh_blocked(uuid) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION stepevents.refresh_blocked(uuid) TO stepevents_producer;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.next_claimable_step(p_handlers text[], p_skip uuid[])
RETURNS uuid
LANGUAGE plpgsql
SET enable_sort = off
AS $$
DECLARE
    v_step uuid;
BEGIN
    SELECT s.step_uuid INTO v_step
    FROM stepevents.workflow_steps s
    WHERE s.state IN ('pending', 'waiting_for_retry')
      AND (p_handlers IS NULL OR s.handler = ANY (p_handlers))
      AND (s.next_retry_at IS NULL OR s.next_retry_at <= now())
      AND (s.attempts = 0 OR (s.retryable AND NOT s.retry_blocked AND s.attempts < s.max_attempts))
      AND NOT EXISTS (
          SELECT 1
          FROM stepevents.workflow_step_edges e
          JOIN stepevents.workflow_steps ps ON ps.step_uuid = e.from_step_uuid
          WHERE e.to_step_uuid = s.step_uuid AND ps.state NOT IN ('complete', 'resolved_manually'))
      AND s.step_uuid <> ALL (p_skip)
    ORDER BY s.created_at, s.task_uuid, s.position
    LIMIT 1
    FOR UPDATE OF s SKIP LOCKED;
    RETURN v_step;
END
$$;
-- +goose StatementEnd

DROP INDEX stepevents.workflow_steps_claim_order_idx;
CREATE INDEX workflow_steps_claim_order_idx ON stepevents.workflow_steps (created_at, task_uuid, position)
    WHERE state IN ('pending', 'waiting_for_retry');

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.refresh_task_state(p_task_uuid uuid)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
BEGIN
    -- Lock the task first, then aggregate in a fresh statement: under READ
    -- COMMITTED this sees sibling steps committed while we waited for the lock.
    PERFORM 1 FROM stepevents.tasks WHERE task_uuid = p_task_uuid FOR UPDATE;

    SELECT CASE
        WHEN bool_and(state IN ('complete', 'resolved_manually')) THEN 'complete'
        WHEN bool_or(state = 'error') THEN 'error'
        WHEN bool_and(state IN ('complete', 'resolved_manually', 'cancelled')) THEN 'cancelled'
        WHEN bool_or(state <> 'pending') THEN 'in_progress'
        ELSE 'pending'
    END INTO v_state
    FROM stepevents.workflow_steps WHERE task_uuid = p_task_uuid;

    UPDATE stepevents.tasks
    SET state = v_state,
        updated_at = now(),
        completed_at = CASE WHEN v_state = 'complete' THEN now() END
    WHERE task_uuid = p_task_uuid AND state IS DISTINCT FROM v_state;
    RETURN v_state;
END
$$;
-- +goose StatementEnd

DROP FUNCTION stepevents.refresh_blocked(uuid);
ALTER TABLE stepevents.workflow_steps DROP COLUMN blocked;
