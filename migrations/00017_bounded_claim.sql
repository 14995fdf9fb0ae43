-- claim_ready_steps walks the claim order and stops, whatever the statistics.
--
-- It visited candidates with an unbounded ORDER BY query, locking each in
-- the loop, so PostgreSQL sorted every claimable step on every claim:
-- O(backlog) per claim. With ~9,500 pending steps a claim took 26 ms on one
-- client and 98 ms at eight (pgbench, claim then record, on this project's
-- 2-CPU test machine): the runner claimed at most ~70 steps per second.
--
-- Now next_claimable_step finds one step at a time: the usual queue-table
-- claim, ORDER BY the claim order, LIMIT 1, FOR UPDATE OF s SKIP LOCKED, an
-- ordered walk of workflow_steps_claim_order_idx that stops at the first
-- step it can take: 1.9 ms per claim at one client, 8 ms at eight, about
-- 500 claims and records per second with that backlog. Its cost follows
-- the steps ahead of the first claimable one in claim order that it must
-- pass (steps of other handlers, steps blocked behind an unfinished or
-- failed parent), not the backlog behind it. Given a LIMIT the planner still
-- sorts when it believes the table nearly empty -- right after a bulk
-- insert, before autovacuum has analyzed it (measured: 34 ms per claim with
-- 10,000 steps never analyzed) -- so next_claimable_step runs with
-- enable_sort off: that one query, not the readiness checks and start_step
-- around it.
--
-- One step at a time, as before, and forward only: a claim locks a step,
-- then (start_step) its task row, then a later step in claim order (each
-- call continues after the key of the previous candidate). Locking every
-- candidate up front and then their task rows one by one could deadlock
-- with a transaction that holds one of those task rows and wants a later
-- candidate; starting each call from the head again could deadlock two
-- claims of several steps (one takes task B's row, then goes back to A).
--
-- What is unchanged: the order (oldest task first), the readiness check
-- under the lock through stepevents.step_readiness, and start_step.
--
-- Where the stepevents_producer role exists it may run the new function;
-- where sql/roles.sql took EXECUTE away from PUBLIC in this database, PUBLIC
-- may not, like every other stepevents function there.

-- +goose Up
-- The claim order ends with step_uuid: (created_at, task_uuid, position)
-- alone need not be unique (apply_template does not insist on distinct
-- positions), and the forward-only cursor below must not skip a tie.
DROP INDEX stepevents.workflow_steps_claim_order_idx;
CREATE INDEX workflow_steps_claim_order_idx ON stepevents.workflow_steps (created_at, task_uuid, position, step_uuid)
    WHERE state IN ('pending', 'waiting_for_retry');

-- +goose StatementBegin
-- next_claimable_step locks and returns the first claimable step in claim
-- order whose handler is in p_handlers (NULL: any) and whose claim-order
-- key comes after (p_after_created, p_after_task, p_after_position,
-- p_after_step), skipping steps other claimers hold; NULLs when there is
-- none. claim_ready_steps starts below every key ('-infinity', the nil
-- uuid, the least integer) and passes each candidate's key to the next
-- call, so a claim of several steps moves forward only. A step claimed
-- since the statement began is re-checked on its latest version and
-- passed over. The scan restates readiness cheaply (index lookups per row,
-- no aggregate) to skip blocked steps; claim_ready_steps asks the view
-- under the lock.
CREATE FUNCTION stepevents.next_claimable_step(
    p_handlers text[], p_after_created timestamptz, p_after_task uuid, p_after_position integer, p_after_step uuid,
    OUT o_step uuid, OUT o_created timestamptz, OUT o_task uuid, OUT o_position integer)
LANGUAGE plpgsql
SET enable_sort = off
AS $$
BEGIN
    SELECT s.step_uuid, s.created_at, s.task_uuid, s.position INTO o_step, o_created, o_task, o_position
    FROM stepevents.workflow_steps s
    WHERE s.state IN ('pending', 'waiting_for_retry')
      AND (s.created_at, s.task_uuid, s.position, s.step_uuid)
          > (p_after_created, p_after_task, p_after_position, p_after_step)
      AND (p_handlers IS NULL OR s.handler = ANY (p_handlers))
      AND (s.next_retry_at IS NULL OR s.next_retry_at <= now())
      AND (s.attempts = 0 OR (s.retryable AND NOT s.retry_blocked AND s.attempts < s.max_attempts))
      AND NOT EXISTS (
          SELECT 1
          FROM stepevents.workflow_step_edges e
          JOIN stepevents.workflow_steps ps ON ps.step_uuid = e.from_step_uuid
          WHERE e.to_step_uuid = s.step_uuid AND ps.state NOT IN ('complete', 'resolved_manually'))
    ORDER BY s.created_at, s.task_uuid, s.position, s.step_uuid
    LIMIT 1
    FOR UPDATE OF s SKIP LOCKED;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- claim_ready_steps starts up to p_limit ready steps (readiness as
-- stepevents.step_readiness computes it) whose handler is in p_handlers
-- (NULL: any), and returns them in_progress, each with an attempt counted,
-- all in the caller's statement: the claim commits with it or not at all.
--
-- Candidates come one at a time from next_claimable_step, oldest task
-- first, in (created_at, task_uuid, position, step_uuid) order, never
-- going back, locked FOR UPDATE SKIP LOCKED (concurrent claimers never
-- wait on each other's step rows and never get the same step; two claims
-- of one task's steps wait briefly on its task row). Each one's readiness is read from
-- stepevents.step_readiness under the lock with a fresh snapshot, and
-- stepevents.start_step starts it. start_step locks the step's task row;
-- locking one step, then its task, then a later step, all in one global
-- order, keeps two claims from deadlocking on each other's task rows.
CREATE OR REPLACE FUNCTION stepevents.claim_ready_steps(p_limit integer, p_handlers text[] DEFAULT NULL)
RETURNS SETOF stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    c         record;
    v_claimed integer := 0;
    -- The claim-order key of the last candidate; at first, below every key.
    v_created timestamptz := '-infinity';
    v_task    uuid := '00000000-0000-0000-0000-000000000000';
    v_pos     integer := -2147483648;
    v_step    uuid := '00000000-0000-0000-0000-000000000000';
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
        RAISE EXCEPTION 'claim limit must be between 1 and 1000, got %', p_limit USING ERRCODE = 'SE005';
    END IF;
    WHILE v_claimed < p_limit LOOP
        c := stepevents.next_claimable_step(p_handlers, v_created, v_task, v_pos, v_step);
        EXIT WHEN c.o_step IS NULL;
        v_created := c.o_created;
        v_task := c.o_task;
        v_pos := c.o_position;
        v_step := c.o_step;
        IF (SELECT r.ready_for_execution FROM stepevents.step_readiness r WHERE r.step_uuid = c.o_step) THEN
            RETURN NEXT stepevents.start_step(c.o_step);
            v_claimed := v_claimed + 1;
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'stepevents_producer') THEN
        GRANT EXECUTE ON FUNCTION stepevents.next_claimable_step(text[], timestamptz, uuid, integer, uuid) TO stepevents_producer;
    END IF;
    -- As in 00016: only where roles.sql took EXECUTE away from PUBLIC here.
    IF NOT has_function_privilege('public', 'stepevents.claim_ready_steps(integer, text[])', 'EXECUTE') THEN
        REVOKE ALL ON FUNCTION stepevents.next_claimable_step(text[], timestamptz, uuid, integer, uuid) FROM PUBLIC;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.claim_ready_steps(p_limit integer, p_handlers text[] DEFAULT NULL)
RETURNS SETOF stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    v_step    uuid;
    v_claimed integer := 0;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
        RAISE EXCEPTION 'claim limit must be between 1 and 1000, got %', p_limit USING ERRCODE = 'SE005';
    END IF;
    -- The scan restates readiness cheaply (index lookups per row, no
    -- aggregate) to skip blocked steps; the view decides, under the lock.
    FOR v_step IN
        SELECT s.step_uuid
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
        ORDER BY s.created_at, s.task_uuid, s.position
    LOOP
        -- Skip a step another claimer holds, or one claimed since the scan
        -- began (the state test is re-checked on the row's latest version).
        PERFORM 1 FROM stepevents.workflow_steps s
        WHERE s.step_uuid = v_step AND s.state IN ('pending', 'waiting_for_retry')
        FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        CONTINUE WHEN NOT (SELECT r.ready_for_execution FROM stepevents.step_readiness r WHERE r.step_uuid = v_step);
        RETURN NEXT stepevents.start_step(v_step);
        v_claimed := v_claimed + 1;
        EXIT WHEN v_claimed >= p_limit;
    END LOOP;
END
$$;
-- +goose StatementEnd

DROP FUNCTION stepevents.next_claimable_step(text[], timestamptz, uuid, integer, uuid);

DROP INDEX stepevents.workflow_steps_claim_order_idx;
CREATE INDEX workflow_steps_claim_order_idx ON stepevents.workflow_steps (created_at, task_uuid, position)
    WHERE state IN ('pending', 'waiting_for_retry');
