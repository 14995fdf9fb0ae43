-- Templates' newest version: ordered as numeric arrays, ties broken.
--
-- create_task picked the newest version with string_to_array(version,
-- '.')::integer[], so one stored version with a part above 2^31-1 (the
-- table's CHECK allowed it, and the loader did until it was tightened) made
-- every task creation for that template name fail with "out of range for
-- type integer"; and versions equal as numbers (01.0.0 and 1.0.0) were
-- picked in no defined order. Now numeric[], newest template_id first on a
-- tie; and new versions must be written as the loader requires (no leading
-- zeros), checked for new rows only (NOT VALID) so no stored row is refused.

-- +goose Up

ALTER TABLE stepevents.task_templates
    ADD CONSTRAINT task_templates_version_canonical
    CHECK (version ~ '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$') NOT VALID;

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
    ORDER BY string_to_array(version, '.')::numeric[] DESC, template_id DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task template %/%@% not found', p_namespace, p_name, coalesce(p_version, 'latest')
            USING ERRCODE = 'SE001';
    END IF;

    INSERT INTO stepevents.tasks (task_uuid, template_id, namespace, template_name, template_version, context,
                                  correlation_id)
    VALUES (p_task_uuid, t.template_id, t.namespace, t.name, t.version, coalesce(p_context, '{}'),
            coalesce(p_correlation_id, p_task_uuid));

    -- Every parent of a new step is unmet: count the edges made below (the
    -- same join). depth comes from the template (apply_template).
    INSERT INTO stepevents.workflow_steps (step_uuid, task_uuid, name, position, handler, retryable, max_attempts,
                                           backoff, backoff_base_ms, max_backoff_ms, timeout_seconds, unmet_parents,
                                           depth)
    SELECT stepevents.uuid_v7(), p_task_uuid, ts.name, ts.position, ts.handler, ts.retryable, ts.max_attempts,
           ts.backoff, ts.backoff_base_ms, ts.max_backoff_ms, ts.timeout_seconds,
           (SELECT count(*)
            FROM unnest(ts.dependencies) AS dep(name)
            JOIN stepevents.template_steps p ON p.template_id = t.template_id AND p.name = dep.name),
           ts.depth
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

ALTER TABLE stepevents.task_templates DROP CONSTRAINT task_templates_version_canonical;

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

    -- Every parent of a new step is unmet: count the edges made below (the
    -- same join). depth comes from the template (apply_template).
    INSERT INTO stepevents.workflow_steps (step_uuid, task_uuid, name, position, handler, retryable, max_attempts,
                                           backoff, backoff_base_ms, max_backoff_ms, timeout_seconds, unmet_parents,
                                           depth)
    SELECT stepevents.uuid_v7(), p_task_uuid, ts.name, ts.position, ts.handler, ts.retryable, ts.max_attempts,
           ts.backoff, ts.backoff_base_ms, ts.max_backoff_ms, ts.timeout_seconds,
           (SELECT count(*)
            FROM unnest(ts.dependencies) AS dep(name)
            JOIN stepevents.template_steps p ON p.template_id = t.template_id AND p.name = dep.name),
           ts.depth
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
