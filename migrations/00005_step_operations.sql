-- Step operations: start (claim), complete, fail, release, resolve, reset,
-- cancel. Each locks the step, checks what it needs, and changes state only
-- through stepevents.transition_step. Any error leaves nothing changed.

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION stepevents.start_step(p_step_uuid uuid)
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
    r stepevents.step_readiness;
BEGIN
    s := stepevents.lock_step(p_step_uuid);
    SELECT * INTO r FROM stepevents.get_step_readiness_status(s.task_uuid, ARRAY[p_step_uuid]);
    IF NOT r.ready_for_execution THEN
        RAISE EXCEPTION 'step % (%) is not ready: %', s.name, p_step_uuid,
            CASE
                WHEN r.current_state NOT IN ('pending', 'waiting_for_retry') THEN 'it is ' || r.current_state
                WHEN NOT r.dependencies_satisfied THEN format('dependencies not satisfied (%s of %s parents done)',
                                                              r.completed_parents, r.total_parents)
                WHEN NOT r.retry_eligible THEN format('no attempts left (%s of %s used)', r.attempts, r.max_attempts)
                ELSE format('backing off until %s', r.next_retry_at)
            END
            USING ERRCODE = 'SE003';
    END IF;
    -- Attempts are counted when a step is claimed, so a crash uses one up.
    UPDATE stepevents.workflow_steps
    SET attempts = attempts + 1, last_attempted_at = now(), next_retry_at = NULL
    WHERE step_uuid = p_step_uuid;
    RETURN stepevents.transition_step(p_step_uuid, 'in_progress', jsonb_build_object('attempt', s.attempts + 1));
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stepevents.require_in_progress(s stepevents.workflow_steps, p_to_state text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF s.state <> 'in_progress' THEN
        RAISE EXCEPTION 'illegal step transition % -> % for step % (%)', s.state, p_to_state, s.name, s.step_uuid
            USING ERRCODE = 'SE002';
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stepevents.complete_step(p_step_uuid uuid, p_result jsonb)
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
BEGIN
    s := stepevents.lock_step(p_step_uuid);
    PERFORM stepevents.require_in_progress(s, 'complete');
    UPDATE stepevents.workflow_steps SET results = coalesce(p_result, 'null'::jsonb), last_error = NULL
    WHERE step_uuid = p_step_uuid;
    RETURN stepevents.transition_step(p_step_uuid, 'complete', jsonb_build_object('attempt', s.attempts));
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stepevents.fail_step(
    p_step_uuid uuid, p_error jsonb, p_permanent boolean DEFAULT false,
    p_retry_after_seconds double precision DEFAULT NULL)
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
    v_retry boolean;
BEGIN
    IF p_retry_after_seconds < 0 THEN
        RAISE EXCEPTION 'retry-after must not be negative, got %', p_retry_after_seconds USING ERRCODE = 'SE005';
    END IF;
    s := stepevents.lock_step(p_step_uuid);
    -- The state machine decides retryability: the template's retryable flag,
    -- the caller's permanent flag and the attempts left.
    v_retry := s.retryable AND NOT coalesce(p_permanent, false) AND s.attempts < s.max_attempts;
    PERFORM stepevents.require_in_progress(s, CASE WHEN v_retry THEN 'waiting_for_retry' ELSE 'error' END);

    UPDATE stepevents.workflow_steps
    SET last_error = p_error,
        last_failure_at = now(),
        retry_blocked = coalesce(p_permanent, false),
        backoff_request_seconds = CASE WHEN v_retry THEN stepevents.backoff_seconds(
            backoff, backoff_base_ms, max_backoff_ms, attempts, p_retry_after_seconds) END
    WHERE step_uuid = p_step_uuid;
    UPDATE stepevents.workflow_steps
    SET next_retry_at = last_failure_at + make_interval(secs => backoff_request_seconds)
    WHERE step_uuid = p_step_uuid;

    RETURN stepevents.transition_step(p_step_uuid,
        CASE WHEN v_retry THEN 'waiting_for_retry' ELSE 'error' END,
        jsonb_build_object('attempt', s.attempts, 'permanent', coalesce(p_permanent, false),
                           'error', p_error->'message'));
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stepevents.release_step(p_step_uuid uuid, p_reason text DEFAULT 'released')
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
BEGIN
    s := stepevents.lock_step(p_step_uuid);
    PERFORM stepevents.require_in_progress(s, 'pending');
    -- The handler never finished, so the attempt is given back.
    UPDATE stepevents.workflow_steps SET attempts = greatest(attempts - 1, 0) WHERE step_uuid = p_step_uuid;
    RETURN stepevents.transition_step(p_step_uuid, 'pending', jsonb_build_object('reason', p_reason));
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stepevents.resolve_step(p_step_uuid uuid, p_note text DEFAULT '')
RETURNS stepevents.workflow_steps
LANGUAGE sql AS $$
    SELECT stepevents.transition_step($1, 'resolved_manually', jsonb_build_object('operator_action', 'resolve', 'note', $2))
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stepevents.reset_step(p_step_uuid uuid, p_note text DEFAULT '')
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
BEGIN
    s := stepevents.lock_step(p_step_uuid);
    IF s.state <> 'error' THEN
        RAISE EXCEPTION 'illegal step transition % -> pending for step % (%): only a failed step can be reset',
            s.state, s.name, p_step_uuid USING ERRCODE = 'SE002';
    END IF;
    UPDATE stepevents.workflow_steps
    SET attempts = 0, retry_blocked = false, backoff_request_seconds = NULL, next_retry_at = NULL
    WHERE step_uuid = p_step_uuid;
    RETURN stepevents.transition_step(p_step_uuid, 'pending',
        jsonb_build_object('operator_action', 'reset', 'note', p_note, 'previous_attempts', s.attempts));
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stepevents.cancel_step(p_step_uuid uuid, p_note text DEFAULT '')
RETURNS stepevents.workflow_steps
LANGUAGE sql AS $$
    SELECT stepevents.transition_step($1, 'cancelled', jsonb_build_object('operator_action', 'cancel', 'note', $2))
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stepevents.cancel_step(uuid, text);
DROP FUNCTION stepevents.reset_step(uuid, text);
DROP FUNCTION stepevents.resolve_step(uuid, text);
DROP FUNCTION stepevents.release_step(uuid, text);
DROP FUNCTION stepevents.fail_step(uuid, jsonb, boolean, double precision);
DROP FUNCTION stepevents.complete_step(uuid, jsonb);
DROP FUNCTION stepevents.require_in_progress(stepevents.workflow_steps, text);
DROP FUNCTION stepevents.start_step(uuid);
