-- One UPDATE of the step row per state change, and one lock.
--
-- Until now the hot operations (start, complete, fail) locked the step,
-- updated its own columns, and then called transition_step, which locked it
-- again and updated it a second time to change the state: two tuple
-- versions of workflow_steps per operation (three for a failure), each
-- with its WAL record and, because state is indexed, new index entries.
-- Measured with pgbench on this project's bench data: complete_step went
-- from about 0.19 to 0.15 ms of server time.
--
-- append_transition is now the gate every state change passes: it checks
-- the transition table and writes the history row (exactly one
-- most_recent). Its caller holds the step's lock and writes the new state
-- in the same UPDATE as its other columns, then re-derives the task state.
-- transition_step keeps its contract (lock, append, update, refresh) for
-- the other operations: resolve and cancel change only the state; release
-- and reset still update their own columns first, in a separate UPDATE
-- (rare operations, left as they were).

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION stepevents.append_transition(s stepevents.workflow_steps, p_to_state text, p_metadata jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_sort integer;
    v_current text;
    v_id bigint;
BEGIN
    IF NOT stepevents.step_transition_allowed(s.state, p_to_state) THEN
        RAISE EXCEPTION 'illegal step transition % -> % for step % (%)', s.state, p_to_state, s.name, s.step_uuid
            USING ERRCODE = 'SE002';
    END IF;

    UPDATE stepevents.workflow_step_transitions SET most_recent = false
    WHERE step_uuid = s.step_uuid AND most_recent
    RETURNING sort_key, to_state INTO v_sort, v_current;
    -- s must be the step as locked now: history and state never disagree.
    IF v_current IS DISTINCT FROM s.state THEN
        RAISE EXCEPTION 'step % (%) is %, not % as given: lock and read it first', s.name, s.step_uuid,
            coalesce(v_current, 'without history'), s.state USING ERRCODE = 'SE002';
    END IF;

    INSERT INTO stepevents.workflow_step_transitions (step_uuid, from_state, to_state, most_recent, sort_key, metadata)
    VALUES (s.step_uuid, s.state, p_to_state, true, coalesce(v_sort, 0) + 1, coalesce(p_metadata, '{}'))
    RETURNING transition_id INTO v_id;
    RETURN v_id;
END
$$;
-- +goose StatementEnd

-- Where sql/roles.sql was applied before this migration, the producer role
-- may already run transition_step; it needs the new gate as well.
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'stepevents_producer') THEN
        GRANT EXECUTE ON FUNCTION stepevents.append_transition(stepevents.workflow_steps, text, jsonb)
            TO stepevents_producer;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.transition_step(p_step_uuid uuid, p_to_state text, p_metadata jsonb DEFAULT '{}')
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
BEGIN
    s := stepevents.lock_step(p_step_uuid);
    PERFORM stepevents.append_transition(s, p_to_state, p_metadata);
    UPDATE stepevents.workflow_steps SET state = p_to_state, updated_at = now()
    WHERE step_uuid = p_step_uuid
    RETURNING * INTO s;
    PERFORM stepevents.refresh_task_state(s.task_uuid);
    RETURN s;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.start_step(p_step_uuid uuid)
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
    r stepevents.step_readiness;
    v_claim bigint;
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
    -- The claim is identified by the transition row it writes. Attempts are
    -- counted when a step is claimed, so a crash uses one up.
    v_claim := stepevents.append_transition(s, 'in_progress', jsonb_build_object('attempt', s.attempts + 1));
    UPDATE stepevents.workflow_steps
    SET state = 'in_progress', updated_at = now(),
        attempts = attempts + 1, last_attempted_at = now(), next_retry_at = NULL, claim_id = v_claim
    WHERE step_uuid = p_step_uuid
    RETURNING * INTO s;
    PERFORM stepevents.refresh_task_state(s.task_uuid);
    RETURN s;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.complete_step(p_step_uuid uuid, p_result jsonb)
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
BEGIN
    s := stepevents.lock_step(p_step_uuid);
    PERFORM stepevents.require_in_progress(s, 'complete');
    PERFORM stepevents.append_transition(s, 'complete', jsonb_build_object('attempt', s.attempts));
    UPDATE stepevents.workflow_steps
    SET state = 'complete', updated_at = now(), results = coalesce(p_result, 'null'::jsonb), last_error = NULL
    WHERE step_uuid = p_step_uuid
    RETURNING * INTO s;
    PERFORM stepevents.refresh_task_state(s.task_uuid);
    RETURN s;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.fail_step(
    p_step_uuid uuid, p_error jsonb, p_permanent boolean DEFAULT false,
    p_retry_after_seconds double precision DEFAULT NULL)
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
    v_retry boolean;
    v_to text;
    v_backoff double precision;
BEGIN
    IF p_retry_after_seconds < 0 THEN
        RAISE EXCEPTION 'retry-after must not be negative, got %', p_retry_after_seconds USING ERRCODE = 'SE005';
    END IF;
    s := stepevents.lock_step(p_step_uuid);
    -- The state machine decides retryability: the template's retryable flag,
    -- the caller's permanent flag and the attempts left.
    v_retry := s.retryable AND NOT coalesce(p_permanent, false) AND s.attempts < s.max_attempts;
    v_to := CASE WHEN v_retry THEN 'waiting_for_retry' ELSE 'error' END;
    PERFORM stepevents.require_in_progress(s, v_to);
    IF v_retry THEN
        v_backoff := stepevents.backoff_seconds(s.backoff, s.backoff_base_ms, s.max_backoff_ms, s.attempts,
                                                p_retry_after_seconds);
    END IF;

    PERFORM stepevents.append_transition(s, v_to,
        jsonb_build_object('attempt', s.attempts, 'permanent', coalesce(p_permanent, false),
                           'error', p_error->'message'));
    UPDATE stepevents.workflow_steps
    SET state = v_to, updated_at = now(),
        last_error = p_error,
        last_failure_at = now(),
        retry_blocked = coalesce(p_permanent, false),
        backoff_request_seconds = v_backoff,
        next_retry_at = now() + make_interval(secs => v_backoff)
    WHERE step_uuid = p_step_uuid
    RETURNING * INTO s;
    PERFORM stepevents.refresh_task_state(s.task_uuid);
    RETURN s;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- The definitions of 00005 (complete_step, fail_step), 00012 (start_step)
-- and 00003 (transition_step), verbatim.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.fail_step(
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
CREATE OR REPLACE FUNCTION stepevents.complete_step(p_step_uuid uuid, p_result jsonb)
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
CREATE OR REPLACE FUNCTION stepevents.start_step(p_step_uuid uuid)
RETURNS stepevents.workflow_steps
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
    r stepevents.step_readiness;
    v_claim bigint;
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
    PERFORM stepevents.transition_step(p_step_uuid, 'in_progress', jsonb_build_object('attempt', s.attempts + 1));
    -- The claim is identified by the transition row just written.
    SELECT transition_id INTO v_claim
    FROM stepevents.workflow_step_transitions
    WHERE step_uuid = p_step_uuid AND most_recent;
    -- Attempts are counted when a step is claimed, so a crash uses one up.
    UPDATE stepevents.workflow_steps
    SET attempts = attempts + 1, last_attempted_at = now(), next_retry_at = NULL, claim_id = v_claim
    WHERE step_uuid = p_step_uuid
    RETURNING * INTO s;
    RETURN s;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.transition_step(p_step_uuid uuid, p_to_state text, p_metadata jsonb DEFAULT '{}')
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

DROP FUNCTION stepevents.append_transition(stepevents.workflow_steps, text, jsonb);
