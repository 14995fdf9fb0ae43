-- Publishing domain events in the step-result transaction.
--
-- A completion is two calls: record_step_result records the outcome and
-- returns, as one JSON document, the step context and which declarations
-- fire (decided here, by should_publish, with retryability read back from
-- readiness after the failure was recorded); emit_events then sends the
-- built events to pgmq and/or NOTIFY in the same transaction.

-- +goose Up

-- Oversized fast events: the NOTIFY carries only a reference; listeners fetch
-- the event from here. Rows older than an hour are pruned on insert.
CREATE TABLE stepevents.fast_event_stash (
    event_id   uuid        PRIMARY KEY,
    event      jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fast_event_stash_created_idx ON stepevents.fast_event_stash (created_at);

-- +goose StatementBegin
-- should_publish is the condition table of the spec. is_retryable is NULL on
-- success; retryable_failure / permanent_failure need it TRUE / FALSE.
CREATE FUNCTION stepevents.should_publish(condition text, step_succeeded boolean, is_retryable boolean)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    CASE condition
        WHEN 'success' THEN RETURN step_succeeded;
        WHEN 'failure' THEN RETURN NOT step_succeeded;
        WHEN 'retryable_failure' THEN RETURN NOT step_succeeded AND is_retryable IS TRUE;
        WHEN 'permanent_failure' THEN RETURN NOT step_succeeded AND is_retryable IS FALSE;
        WHEN 'always' THEN RETURN true;
        ELSE
            RAISE EXCEPTION 'unknown publication condition %', quote_nullable(condition)
                USING ERRCODE = 'SE004',
                      HINT = 'use success, failure, retryable_failure, permanent_failure or always';
    END CASE;
END
$$;
-- +goose StatementEnd

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
-- emit_events sends durable events to the queue and, for in-transaction fast
-- delivery, NOTIFYs; oversized fast events are stashed for reference
-- envelopes. Everything joins the caller's transaction. Returns the pgmq
-- msg_ids in the order of p_messages.
CREATE FUNCTION stepevents.emit_events(
    p_queue text, p_messages jsonb[], p_headers jsonb[],
    p_channel text, p_notifications text[],
    p_stash_ids uuid[], p_stash_events jsonb[])
RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[] := '{}';
BEGIN
    IF cardinality(p_stash_ids) > 0 THEN
        DELETE FROM stepevents.fast_event_stash WHERE created_at < now() - interval '1 hour';
        INSERT INTO stepevents.fast_event_stash (event_id, event)
        SELECT * FROM unnest(p_stash_ids, p_stash_events);
    END IF;
    IF cardinality(p_messages) > 0 THEN
        SELECT array_agg(id) INTO v_ids
        FROM pgmq.send_batch(p_queue::text, p_messages::jsonb[], p_headers::jsonb[]) AS id;
    END IF;
    IF cardinality(p_notifications) > 0 THEN
        PERFORM pg_notify(p_channel, n) FROM unnest(p_notifications) AS n;
    END IF;
    RETURN v_ids;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stepevents.emit_events(text, jsonb[], jsonb[], text, text[], uuid[], jsonb[]);
DROP FUNCTION stepevents.record_step_result(uuid, boolean, jsonb, jsonb, boolean, double precision);
DROP FUNCTION stepevents.should_publish(text, boolean, boolean);
DROP TABLE stepevents.fast_event_stash;
