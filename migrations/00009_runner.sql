-- The step runner's SQL: claiming ready steps and finding steps whose worker
-- was lost.
--
-- A runner claims with claim_ready_steps (one statement: pick, lock, start),
-- runs the handler outside any transaction, then records the result with the
-- publishing functions. A worker that dies in between leaves its step
-- in_progress; stale_steps finds such steps once their attempt has outlived
-- its timeout, and the runner fails them (retryable, the attempt counted)
-- through the normal publishing path, so the failure's declared events are
-- published like any other failure's.

-- +goose Up

-- Claims visit claimable steps oldest task first (see claim_ready_steps).
CREATE INDEX workflow_steps_claim_order_idx ON stepevents.workflow_steps (created_at, task_uuid, position)
    WHERE state IN ('pending', 'waiting_for_retry');

-- Stale-step lookups scan only in-progress steps, oldest attempt first.
CREATE INDEX workflow_steps_in_progress_idx ON stepevents.workflow_steps (last_attempted_at)
    WHERE state = 'in_progress';

-- +goose StatementBegin
-- claim_ready_steps starts up to p_limit ready steps (readiness as
-- stepevents.step_readiness computes it) whose handler is in p_handlers
-- (NULL: any), and returns them in_progress, each with an attempt counted,
-- all in the caller's statement: the claim commits with it or not at all.
--
-- Candidates are visited oldest task first, in (created_at, task_uuid,
-- position) order. Each is locked FOR UPDATE SKIP LOCKED (concurrent
-- claimers never wait for each other and never get the same step), its
-- readiness is read from stepevents.step_readiness under the lock with a
-- fresh snapshot, and stepevents.start_step starts it.
-- start_step locks the step's task row; visiting tasks in one global order
-- keeps two claimers from deadlocking on each other's task rows.
CREATE FUNCTION stepevents.claim_ready_steps(p_limit integer, p_handlers text[] DEFAULT NULL)
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

-- +goose StatementBegin
-- stale_steps lists up to p_limit in_progress steps, with a handler in
-- p_handlers (NULL: any), whose current attempt started longer ago than its
-- timeout plus p_older_than: the step's own timeout_seconds, or
-- p_default_timeout for steps without one. Their worker is presumed lost.
-- Oldest attempt first. It changes nothing: the runner
-- fails each one through the publishing path (see the runner package), and
-- psql users can look at them with
--   SELECT step_uuid, name, attempts, last_attempted_at FROM stepevents.stale_steps('5 minutes');
CREATE FUNCTION stepevents.stale_steps(
    p_older_than interval, p_default_timeout interval DEFAULT '0 seconds', p_limit integer DEFAULT 100,
    p_handlers text[] DEFAULT NULL, p_exclude uuid[] DEFAULT '{}')
RETURNS SETOF stepevents.workflow_steps
LANGUAGE sql STABLE AS $$
    SELECT s.*
    FROM stepevents.workflow_steps s
    WHERE s.state = 'in_progress'
      AND (p_handlers IS NULL OR s.handler = ANY (p_handlers))
      AND NOT (s.step_uuid = ANY (coalesce(p_exclude, '{}')))
      AND s.last_attempted_at < now() - p_older_than
          - CASE WHEN s.timeout_seconds > 0 THEN make_interval(secs => s.timeout_seconds)
                 ELSE coalesce(p_default_timeout, '0 seconds') END
    ORDER BY s.last_attempted_at
    LIMIT greatest(coalesce(p_limit, 100), 1)
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stepevents.stale_steps(interval, interval, integer, text[], uuid[]);
DROP FUNCTION stepevents.claim_ready_steps(integer, text[]);
DROP INDEX stepevents.workflow_steps_in_progress_idx;
DROP INDEX stepevents.workflow_steps_claim_order_idx;
