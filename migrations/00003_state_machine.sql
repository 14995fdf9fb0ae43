-- The step state machine, enforced in SQL. Every state change goes through
-- stepevents.transition_step, which checks the transition table, appends to
-- the history with exactly one most_recent row, and re-derives the task state.
--
-- Errors use stepevents' own SQLSTATEs so callers can tell them apart:
--   SE001 not found, SE002 illegal transition, SE003 step not ready,
--   SE004 unknown condition, SE005 invalid argument.

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION stepevents.step_transition_allowed(from_state text, to_state text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE $1
        WHEN 'pending'           THEN $2 IN ('in_progress', 'cancelled', 'resolved_manually')
        WHEN 'waiting_for_retry' THEN $2 IN ('in_progress', 'cancelled', 'resolved_manually')
        -- in_progress -> pending is a release: the runner gives the step back
        -- unfinished (shutdown, lost worker) and the attempt is refunded.
        WHEN 'in_progress'       THEN $2 IN ('complete', 'waiting_for_retry', 'error', 'pending',
                                             'cancelled', 'resolved_manually')
        -- error is not terminal: an operator may reset or resolve it.
        WHEN 'error'             THEN $2 IN ('pending', 'cancelled', 'resolved_manually')
        ELSE false -- complete, cancelled, resolved_manually are terminal
    END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stepevents.backoff_seconds(
    backoff text, backoff_base_ms integer, max_backoff_ms integer, attempts integer,
    retry_after_seconds double precision DEFAULT NULL)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- A caller's retry-after hint wins, capped at the step's maximum.
    SELECT CASE
        WHEN $5 IS NOT NULL   THEN least(greatest($5, 0), $3 / 1000.0)
        WHEN $1 = 'none'      THEN 0
        WHEN $1 = 'linear'    THEN least($2::double precision * greatest($4, 1), $3) / 1000.0
        ELSE                       least($2 * power(2::double precision, greatest($4 - 1, 0)), $3) / 1000.0
    END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stepevents.refresh_task_state(p_task_uuid uuid)
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

-- +goose StatementBegin
CREATE FUNCTION stepevents.lock_step(p_step_uuid uuid)
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
BEGIN
    SELECT * INTO s FROM stepevents.workflow_steps WHERE step_uuid = p_step_uuid FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'step % not found', p_step_uuid USING ERRCODE = 'SE001';
    END IF;
    RETURN s;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stepevents.transition_step(p_step_uuid uuid, p_to_state text, p_metadata jsonb DEFAULT '{}')
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
    v_sort integer;
BEGIN
    s := stepevents.lock_step(p_step_uuid);
    IF NOT stepevents.step_transition_allowed(s.state, p_to_state) THEN
        RAISE EXCEPTION 'illegal step transition % -> % for step % (%)', s.state, p_to_state, s.name, p_step_uuid
            USING ERRCODE = 'SE002';
    END IF;

    UPDATE stepevents.workflow_step_transitions SET most_recent = false
    WHERE step_uuid = p_step_uuid AND most_recent
    RETURNING sort_key INTO v_sort;

    INSERT INTO stepevents.workflow_step_transitions (step_uuid, from_state, to_state, most_recent, sort_key, metadata)
    VALUES (p_step_uuid, s.state, p_to_state, true, coalesce(v_sort, 0) + 1, coalesce(p_metadata, '{}'));

    UPDATE stepevents.workflow_steps SET state = p_to_state, updated_at = now()
    WHERE step_uuid = p_step_uuid
    RETURNING * INTO s;

    PERFORM stepevents.refresh_task_state(s.task_uuid);
    RETURN s;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stepevents.transition_step(uuid, text, jsonb);
DROP FUNCTION stepevents.lock_step(uuid);
DROP FUNCTION stepevents.refresh_task_state(uuid);
DROP FUNCTION stepevents.backoff_seconds(text, integer, integer, integer, double precision);
DROP FUNCTION stepevents.step_transition_allowed(text, text);
