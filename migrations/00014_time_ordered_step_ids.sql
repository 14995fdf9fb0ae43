-- Time-ordered step ids.
--
-- create_task gave steps random (v4) uuids, so every write keyed by a step
-- id -- the new index entries of a step's state change, its history rows
-- (unique (step_uuid, sort_key), the most_recent partial index) -- landed on
-- a random leaf page of a large index. After each checkpoint the first
-- change of a page writes the whole page to the WAL: with random task and
-- step ids on a table of ~300,000 steps, 28-42 KB of WAL per completion
-- (pg_waldump: full-page images of six indexes, three keyed by step id,
-- three by task id), 3-6 KB with both time-ordered. Step ids are now UUIDv7
-- (RFC 9562: 48-bit Unix milliseconds, then random bits), like the task ids
-- CreateTask makes and event ids, so steps created together sit together in
-- every index.

-- +goose Up

-- +goose StatementBegin
-- uuid_v7 is a UUIDv7 from clock_timestamp(): a random (v4) uuid whose first
-- 48 bits are replaced by the Unix time in whole milliseconds (truncated, as
-- RFC 9562 and Go's uuid.NewV7 do) and whose version nibble is set to 7
-- (bits 52 and 53; the variant bits are already 10).
CREATE FUNCTION stepevents.uuid_v7()
RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
-- +goose StatementEnd

-- Where sql/roles.sql was applied before this migration, the producer role
-- creates tasks; create_task now calls uuid_v7.
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'stepevents_producer') THEN
        GRANT EXECUTE ON FUNCTION stepevents.uuid_v7() TO stepevents_producer;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.create_task(
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
    SELECT stepevents.uuid_v7(), p_task_uuid, ts.name, ts.position, ts.handler, ts.retryable, ts.max_attempts,
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
-- create_task as 00006_templates_tasks.sql defines it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.create_task(
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

DROP FUNCTION stepevents.uuid_v7();
