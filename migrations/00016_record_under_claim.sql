-- A claim fence for recording an outcome: record_step_result(..., p_claim_id).
--
-- A worker that claimed a step (start_step, claim_ready_steps: the step's
-- claim_id) records its outcome only while the step is still in_progress
-- under that claim; otherwise the attempt was released, reset or recovered
-- as stale and claimed again, and the late outcome must change nothing.
-- The runner checked this with a separate SELECT ... FOR UPDATE in a
-- pgx.Tx (BEGIN, lock, record, emit, COMMIT: five round trips). Done inside
-- record_step_result, it raises SE006 and the fenced recording takes the
-- same two pipelined round trips as CompleteStep. A NULL claim (the
-- default) records without the fence, as before.
--
-- The signature changes, so the function is dropped and created again.
-- Where the stepevents_producer role exists it is granted the function
-- again; where sql/roles.sql took EXECUTE away from PUBLIC in this
-- database, PUBLIC does not get it back.

-- +goose Up
DROP FUNCTION stepevents.record_step_result(uuid, boolean, jsonb, jsonb, boolean, double precision);

-- +goose StatementBegin
CREATE FUNCTION stepevents.record_step_result(
    p_step_uuid uuid, p_succeeded boolean, p_result jsonb, p_error jsonb,
    p_permanent boolean DEFAULT false, p_retry_after_seconds double precision DEFAULT NULL,
    p_claim_id bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
    r stepevents.step_readiness;
    t stepevents.tasks;
    v_retryable boolean;
BEGIN
    IF p_claim_id IS NOT NULL THEN
        -- The fence: lock the step and check the claim on its latest
        -- version (FOR UPDATE rechecks the condition after a wait).
        PERFORM FROM stepevents.workflow_steps
        WHERE step_uuid = p_step_uuid AND state = 'in_progress' AND claim_id = p_claim_id
        FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'step % is no longer in progress under claim %', p_step_uuid, p_claim_id
                USING ERRCODE = 'SE006',
                      HINT = 'the step was released, reset, failed or completed since that claim; the outcome is discarded';
        END IF;
    END IF;
    IF p_succeeded THEN
        s := stepevents.complete_step(p_step_uuid, p_result);
    ELSE
        s := stepevents.fail_step(p_step_uuid, p_error, p_permanent, p_retry_after_seconds);
        -- Retryability as the database now sees it: equal to the state
        -- machine's decision (waiting_for_retry vs error).
        SELECT * INTO r FROM stepevents.get_step_readiness_status(s.task_uuid, ARRAY[s.step_uuid]);
        v_retryable := r.is_retryable;
        IF v_retryable IS DISTINCT FROM (s.state = 'waiting_for_retry') THEN
            RAISE EXCEPTION 'readiness says is_retryable=% but the step is %', v_retryable, s.state;
        END IF;
    END IF;
    SELECT * INTO t FROM stepevents.tasks WHERE task_uuid = s.task_uuid;

    RETURN jsonb_build_object(
        'step', to_jsonb(s),
        'succeeded', p_succeeded,
        'is_retryable', v_retryable,
        'template_id', t.template_id,
        -- The step context every event carries, ready to embed.
        'task_sequence_step', jsonb_build_object(
        'task', jsonb_build_object(
            'task_uuid', t.task_uuid, 'namespace', t.namespace, 'task_name', t.template_name,
            'task_version', t.template_version, 'context', t.context, 'correlation_id', t.correlation_id,
            'state', t.state, 'created_at', t.created_at),
        'workflow_step', jsonb_build_object(
            'workflow_step_uuid', s.step_uuid, 'task_uuid', s.task_uuid, 'name', s.name, 'handler', s.handler,
            'state', s.state, 'retryable', s.retryable, 'max_attempts', s.max_attempts, 'attempts', s.attempts,
            'last_attempted_at', s.last_attempted_at, 'backoff_request_seconds', s.backoff_request_seconds,
            'next_retry_at', s.next_retry_at, 'results', s.results, 'last_error', s.last_error),
        'dependency_results', coalesce((
            SELECT jsonb_object_agg(ps.name, ps.results)
            FROM stepevents.workflow_step_edges e
            JOIN stepevents.workflow_steps ps ON ps.step_uuid = e.from_step_uuid
            WHERE e.to_step_uuid = s.step_uuid), '{}')),
        'declarations', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'event_name', d.event_name, 'condition', d.condition, 'delivery_mode', d.delivery_mode,
                       'publisher', d.publisher,
                       'fires', stepevents.should_publish(d.condition, p_succeeded, v_retryable))
                   ORDER BY d.position)
            FROM stepevents.event_declarations d
            WHERE d.template_id = t.template_id AND d.step_name = s.name), '[]'));
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'stepevents_producer') THEN
        GRANT EXECUTE ON FUNCTION stepevents.record_step_result(uuid, boolean, jsonb, jsonb, boolean,
            double precision, bigint) TO stepevents_producer;
    END IF;
    -- roles.sql took EXECUTE away from PUBLIC in this database (roles are
    -- server-wide, so the role existing says nothing about this database):
    -- keep it that way for the new function, and for the two that 00013 and
    -- 00014 added and left executable by PUBLIC.
    IF NOT has_function_privilege('public', 'stepevents.claim_ready_steps(integer, text[])', 'EXECUTE') THEN
        REVOKE ALL ON FUNCTION stepevents.record_step_result(uuid, boolean, jsonb, jsonb, boolean,
            double precision, bigint) FROM PUBLIC;
        REVOKE ALL ON FUNCTION stepevents.append_transition(stepevents.workflow_steps, text, jsonb) FROM PUBLIC;
        REVOKE ALL ON FUNCTION stepevents.uuid_v7() FROM PUBLIC;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stepevents.record_step_result(uuid, boolean, jsonb, jsonb, boolean, double precision, bigint);

-- +goose StatementBegin
CREATE FUNCTION stepevents.record_step_result(
    p_step_uuid uuid, p_succeeded boolean, p_result jsonb, p_error jsonb,
    p_permanent boolean DEFAULT false, p_retry_after_seconds double precision DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    s stepevents.workflow_steps;
    r stepevents.step_readiness;
    t stepevents.tasks;
    v_retryable boolean;
BEGIN
    IF p_succeeded THEN
        s := stepevents.complete_step(p_step_uuid, p_result);
    ELSE
        s := stepevents.fail_step(p_step_uuid, p_error, p_permanent, p_retry_after_seconds);
        -- Retryability as the database now sees it: equal to the state
        -- machine's decision (waiting_for_retry vs error).
        SELECT * INTO r FROM stepevents.get_step_readiness_status(s.task_uuid, ARRAY[s.step_uuid]);
        v_retryable := r.is_retryable;
        IF v_retryable IS DISTINCT FROM (s.state = 'waiting_for_retry') THEN
            RAISE EXCEPTION 'readiness says is_retryable=% but the step is %', v_retryable, s.state;
        END IF;
    END IF;
    SELECT * INTO t FROM stepevents.tasks WHERE task_uuid = s.task_uuid;

    RETURN jsonb_build_object(
        'step', to_jsonb(s),
        'succeeded', p_succeeded,
        'is_retryable', v_retryable,
        'template_id', t.template_id,
        -- The step context every event carries, ready to embed.
        'task_sequence_step', jsonb_build_object(
        'task', jsonb_build_object(
            'task_uuid', t.task_uuid, 'namespace', t.namespace, 'task_name', t.template_name,
            'task_version', t.template_version, 'context', t.context, 'correlation_id', t.correlation_id,
            'state', t.state, 'created_at', t.created_at),
        'workflow_step', jsonb_build_object(
            'workflow_step_uuid', s.step_uuid, 'task_uuid', s.task_uuid, 'name', s.name, 'handler', s.handler,
            'state', s.state, 'retryable', s.retryable, 'max_attempts', s.max_attempts, 'attempts', s.attempts,
            'last_attempted_at', s.last_attempted_at, 'backoff_request_seconds', s.backoff_request_seconds,
            'next_retry_at', s.next_retry_at, 'results', s.results, 'last_error', s.last_error),
        'dependency_results', coalesce((
            SELECT jsonb_object_agg(ps.name, ps.results)
            FROM stepevents.workflow_step_edges e
            JOIN stepevents.workflow_steps ps ON ps.step_uuid = e.from_step_uuid
            WHERE e.to_step_uuid = s.step_uuid), '{}')),
        'declarations', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'event_name', d.event_name, 'condition', d.condition, 'delivery_mode', d.delivery_mode,
                       'publisher', d.publisher,
                       'fires', stepevents.should_publish(d.condition, p_succeeded, v_retryable))
                   ORDER BY d.position)
            FROM stepevents.event_declarations d
            WHERE d.template_id = t.template_id AND d.step_name = s.name), '[]'));
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'stepevents_producer') THEN
        GRANT EXECUTE ON FUNCTION stepevents.record_step_result(uuid, boolean, jsonb, jsonb, boolean,
            double precision) TO stepevents_producer;
    END IF;
    IF NOT has_function_privilege('public', 'stepevents.claim_ready_steps(integer, text[])', 'EXECUTE') THEN
        REVOKE ALL ON FUNCTION stepevents.record_step_result(uuid, boolean, jsonb, jsonb, boolean,
            double precision) FROM PUBLIC;
    END IF;
END
$$;
-- +goose StatementEnd
