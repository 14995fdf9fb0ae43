-- apply_template sets lz4 on its queue itself.
--
-- 00011 added stepevents.compress_queue_messages, and the Go ApplyTemplate
-- called it in a second statement after apply_template, so templates
-- applied from SQL alone kept pglz (a quarter to a third of every send).
-- The call now sits inside apply_template, where the queue is created.

-- +goose Up

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.apply_template(
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
    -- lz4 for the queue's ~2 KB messages (00011). Best effort: false (no
    -- lz4, not the table's owner, table busy) changes nothing.
    PERFORM stepevents.compress_queue_messages(p_namespace || '_domain_events');
    RETURN v_id;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- apply_template as 00006_templates_tasks.sql defines it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.apply_template(
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
