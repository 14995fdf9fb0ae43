-- Applying templates and creating tasks from them, each in one call.

-- +goose Up

-- +goose StatementBegin
-- apply_template stores a validated template (the Go loader validates it) with
-- its steps and event declarations, and creates the namespace's queues.
-- Idempotent per (namespace, name, version): the same definition again is a
-- no-op; a different definition under the same version is refused.
CREATE FUNCTION stepevents.apply_template(
    p_namespace text, p_name text, p_version text, p_description text,
    p_input_schema jsonb, p_definition jsonb, p_steps jsonb, p_events jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_existing jsonb;
BEGIN
    -- Serialise concurrent applies of the same template (FOR UPDATE cannot
    -- lock a row that does not exist yet): replicas applying at startup
    -- then see each other's row instead of a unique violation.
    PERFORM pg_advisory_xact_lock(hashtext('stepevents.template:' || p_namespace || '/' || p_name || '@' || p_version));
    SELECT template_id, definition INTO v_id, v_existing
    FROM stepevents.task_templates
    WHERE namespace = p_namespace AND name = p_name AND version = p_version
    FOR UPDATE;
    IF FOUND THEN
        IF v_existing IS DISTINCT FROM p_definition THEN
            RAISE EXCEPTION 'template %/%@% is already applied with a different definition; bump its version',
                p_namespace, p_name, p_version USING ERRCODE = 'SE005';
        END IF;
    ELSE
        INSERT INTO stepevents.task_templates (namespace, name, version, description, input_schema, definition)
        VALUES (p_namespace, p_name, p_version, coalesce(p_description, ''), p_input_schema, p_definition)
        RETURNING template_id INTO v_id;

        INSERT INTO stepevents.template_steps (template_id, name, position, handler, dependencies, retryable,
                                               max_attempts, backoff, backoff_base_ms, max_backoff_ms, timeout_seconds)
        SELECT v_id, s.name, s.position, s.handler, coalesce(s.dependencies, '{}'), s.retryable,
               s.max_attempts, s.backoff, s.backoff_base_ms, s.max_backoff_ms, coalesce(s.timeout_seconds, 0)
        FROM jsonb_to_recordset(p_steps) AS s(name text, position integer, handler text, dependencies text[],
            retryable boolean, max_attempts integer, backoff text, backoff_base_ms integer, max_backoff_ms integer,
            timeout_seconds integer);

        INSERT INTO stepevents.event_declarations (template_id, step_name, position, event_name, description,
                                                   condition, delivery_mode, publisher, schema, durable_redact)
        SELECT v_id, e.step_name, e.position, e.event_name, coalesce(e.description, ''), e.condition,
               e.delivery_mode, nullif(e.publisher, ''), e.schema, coalesce(e.durable_redact, '{}')
        FROM jsonb_to_recordset(coalesce(p_events, '[]')) AS e(step_name text, position integer, event_name text,
            description text, condition text, delivery_mode text, publisher text, schema jsonb,
            durable_redact text[]);
    END IF;

    PERFORM pgmq.create(p_namespace || '_domain_events');
    PERFORM pgmq.create(p_namespace || '_domain_events_dlq');
    RETURN v_id;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- create_task creates a task with its steps, edges and each step's initial
-- transition. p_version NULL picks the highest applied version.
CREATE FUNCTION stepevents.create_task(
    p_namespace text, p_name text, p_version text, p_context jsonb, p_task_uuid uuid, p_correlation_id uuid)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    t stepevents.task_templates;
BEGIN
    SELECT * INTO t FROM stepevents.task_templates
    WHERE namespace = p_namespace AND name = p_name AND (p_version IS NULL OR version = p_version)
    ORDER BY string_to_array(version, '.')::integer[] DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task template %/%@% not found', p_namespace, p_name, coalesce(p_version, 'latest')
            USING ERRCODE = 'SE001';
    END IF;

    INSERT INTO stepevents.tasks (task_uuid, template_id, namespace, template_name, template_version, context,
                                  correlation_id)
    VALUES (p_task_uuid, t.template_id, t.namespace, t.name, t.version, coalesce(p_context, '{}'),
            coalesce(p_correlation_id, p_task_uuid));

    INSERT INTO stepevents.workflow_steps (step_uuid, task_uuid, name, position, handler, retryable, max_attempts,
                                           backoff, backoff_base_ms, max_backoff_ms, timeout_seconds)
    SELECT gen_random_uuid(), p_task_uuid, ts.name, ts.position, ts.handler, ts.retryable, ts.max_attempts,
           ts.backoff, ts.backoff_base_ms, ts.max_backoff_ms, ts.timeout_seconds
    FROM stepevents.template_steps ts
    WHERE ts.template_id = t.template_id;

    INSERT INTO stepevents.workflow_step_edges (task_uuid, from_step_uuid, to_step_uuid)
    SELECT p_task_uuid, parent.step_uuid, child.step_uuid
    FROM stepevents.template_steps ts
    CROSS JOIN LATERAL unnest(ts.dependencies) AS dep(name)
    JOIN stepevents.workflow_steps child ON child.task_uuid = p_task_uuid AND child.name = ts.name
    JOIN stepevents.workflow_steps parent ON parent.task_uuid = p_task_uuid AND parent.name = dep.name
    WHERE ts.template_id = t.template_id;

    INSERT INTO stepevents.workflow_step_transitions (step_uuid, from_state, to_state, most_recent, sort_key,
                                                      metadata)
    SELECT step_uuid, NULL, 'pending', true, 1, '{"event": "created"}'
    FROM stepevents.workflow_steps WHERE task_uuid = p_task_uuid;

    RETURN p_task_uuid;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stepevents.create_task(text, text, text, jsonb, uuid, uuid);
DROP FUNCTION stepevents.apply_template(text, text, text, text, jsonb, jsonb, jsonb, jsonb);
