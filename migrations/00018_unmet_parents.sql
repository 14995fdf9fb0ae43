-- Claims skip steps whose parents are not done without reading them.
--
-- The claim walks workflow_steps_claim_order_idx, oldest task first, and
-- passed every pending step ahead of the first claimable one, reading each
-- row and its parents' states: the children of a step in error (which stay
-- pending until an operator resets or resolves their parent) sat ahead of
-- every claim, for good. A review measured 36-44 ms per claim past 20,000 of
-- them, and the same walk passes steps waiting on a parent that still runs.
--
-- Now each step counts its parents not yet done (complete or
-- resolved_manually) in unmet_parents, and the claim-order index holds only
-- pending steps whose count is 0: the walk never meets a step that waits on
-- a parent. The count is set by create_task (all parents unmet) and
-- decremented by append_transition, the gate every state change passes,
-- when a step enters complete or resolved_manually; both are terminal, so
-- a count never goes back up. No step is marked ahead of time and nothing
-- is skipped under SKIP LOCKED, so the two ways an earlier, reverted design
-- ("blocked" marks; BENCHMARKS.md, what was tried) could leave a runnable
-- step unclaimed do not arise: a step's count
-- reaches 0 in the same transaction as its last parent's completion, and
-- rolls back with it.
--
-- Readiness itself is unchanged: stepevents.step_readiness and
-- get_step_readiness_status read the edges as before, next_claimable_step
-- keeps its NOT EXISTS test and claim_ready_steps asks the view under the
-- lock. A wrong count can only hide a step from claims, never start one
-- early; TestUnmetParentsFollowEveryTransition checks the counts after each
-- kind of transition, and test/fault's invariants check every count against
-- the edges after its randomized run.
--
-- The children are locked in (depth, step_uuid) order, depth being the
-- longest chain of dependencies above a step (apply_template computes it
-- once per template, create_task copies it): a parent before its
-- children, whoever locks them. In step_uuid order alone, completing a
-- (children b and c, c also a child of b) could lock c and wait for b while
-- an operator's resolve of b held b and waited for c: a deadlock that a
-- task row lock could not prevent, since both take the task row last.
--
-- Cost: a completion or a resolution looks up its children (one index probe
-- of workflow_step_edges_from_idx when there are none) and updates each.

-- +goose Up
ALTER TABLE stepevents.workflow_steps ADD COLUMN unmet_parents integer NOT NULL DEFAULT 0,
                                      ADD COLUMN depth integer NOT NULL DEFAULT 0;
ALTER TABLE stepevents.template_steps ADD COLUMN depth integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN stepevents.workflow_steps.unmet_parents IS
    'parents neither complete nor resolved_manually: the claim index holds pending steps whose count is 0';
COMMENT ON COLUMN stepevents.workflow_steps.depth IS
    'longest chain of dependencies above the step (0: no parents); children are locked in (depth, step_uuid) order';
COMMENT ON COLUMN stepevents.template_steps.depth IS
    'longest chain of dependencies above the step (0: no parents), computed by apply_template';

-- depth of the steps of templates applied before, as apply_template now
-- computes it (see there), all templates at once.
WITH RECURSIVE dep AS (
    SELECT ts.template_id, ts.name AS child, d.name AS parent
    FROM stepevents.template_steps ts CROSS JOIN LATERAL unnest(ts.dependencies) AS d(name)
), chain(template_id, name, depth) AS (
    SELECT ts.template_id, ts.name, 0 FROM stepevents.template_steps ts WHERE cardinality(ts.dependencies) = 0
    UNION
    SELECT dep.template_id, dep.child, c.depth + 1
    FROM chain c JOIN dep ON dep.template_id = c.template_id AND dep.parent = c.name
    WHERE c.depth < (SELECT count(*) FROM stepevents.template_steps)
)
UPDATE stepevents.template_steps ts SET depth = d.depth
FROM (SELECT template_id, name, max(depth) AS depth FROM chain GROUP BY template_id, name) d
WHERE ts.template_id = d.template_id AND ts.name = d.name AND d.depth > 0;

-- The existing steps: their template step's depth, and their parents not
-- done. Steps without parents (depth 0, no edge) are not rewritten.
UPDATE stepevents.workflow_steps s
SET depth = ts.depth,
    unmet_parents = (SELECT count(*)
                     FROM stepevents.workflow_step_edges e
                     JOIN stepevents.workflow_steps p ON p.step_uuid = e.from_step_uuid
                     WHERE e.to_step_uuid = s.step_uuid AND p.state NOT IN ('complete', 'resolved_manually'))
FROM stepevents.tasks t
JOIN stepevents.template_steps ts ON ts.template_id = t.template_id
WHERE t.task_uuid = s.task_uuid AND ts.name = s.name
  AND (ts.depth > 0 OR EXISTS (SELECT FROM stepevents.workflow_step_edges e WHERE e.to_step_uuid = s.step_uuid));

DROP INDEX stepevents.workflow_steps_claim_order_idx;
CREATE INDEX workflow_steps_claim_order_idx ON stepevents.workflow_steps (created_at, task_uuid, position, step_uuid)
    WHERE state IN ('pending', 'waiting_for_retry') AND unmet_parents = 0;

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

        -- depth: the longest chain of dependencies above each step, once
        -- per template (create_task copies it). From the roots down, one
        -- row per step and chain length; the bound stops a cycle, which
        -- the template loader refuses anyway.
        WITH RECURSIVE dep AS (
            SELECT ts.name AS child, d.name AS parent
            FROM stepevents.template_steps ts CROSS JOIN LATERAL unnest(ts.dependencies) AS d(name)
            WHERE ts.template_id = v_id
        ), chain(name, depth) AS (
            SELECT ts.name, 0 FROM stepevents.template_steps ts
            WHERE ts.template_id = v_id AND cardinality(ts.dependencies) = 0
            UNION
            SELECT dep.child, c.depth + 1
            FROM chain c JOIN dep ON dep.parent = c.name
            WHERE c.depth < (SELECT count(*) FROM stepevents.template_steps n WHERE n.template_id = v_id)
        )
        UPDATE stepevents.template_steps ts SET depth = d.depth
        FROM (SELECT name, max(depth) AS depth FROM chain GROUP BY name) d
        WHERE ts.template_id = v_id AND ts.name = d.name AND d.depth > 0;

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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.append_transition(s stepevents.workflow_steps, p_to_state text, p_metadata jsonb)
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

    -- A step done (complete and resolved_manually are terminal) is one
    -- unmet parent fewer for each of its children. The children are locked
    -- in (depth, step_uuid) order, parents before their children, so two
    -- steps finishing at once with children in common, or one finishing
    -- while another of its children is resolved, wait for each other
    -- instead of deadlocking.
    IF p_to_state IN ('complete', 'resolved_manually') THEN
        UPDATE stepevents.workflow_steps c SET unmet_parents = c.unmet_parents - 1
        FROM (SELECT k.step_uuid
              FROM stepevents.workflow_steps k
              WHERE k.step_uuid IN (SELECT e.to_step_uuid FROM stepevents.workflow_step_edges e
                                    WHERE e.from_step_uuid = s.step_uuid)
              ORDER BY k.depth, k.step_uuid
              FOR UPDATE) l
        WHERE c.step_uuid = l.step_uuid;
    END IF;
    RETURN v_id;
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

-- +goose StatementBegin
-- next_claimable_step locks and returns the first claimable step in claim
-- order whose handler is in p_handlers (NULL: any) and whose claim-order
-- key comes after (p_after_created, p_after_task, p_after_position,
-- p_after_step), skipping steps other claimers hold; NULLs when there is
-- none. claim_ready_steps starts below every key ('-infinity', the nil
-- uuid, the least integer) and passes each candidate's key to the next
-- call, so a claim of several steps moves forward only. A step claimed
-- since the statement began is re-checked on its latest version and
-- passed over. Steps with an unmet parent are not in the index it walks;
-- the scan still restates readiness cheaply (index lookups per row, no
-- aggregate), and claim_ready_steps asks the view under the lock.
CREATE OR REPLACE FUNCTION stepevents.next_claimable_step(
    p_handlers text[], p_after_created timestamptz, p_after_task uuid, p_after_position integer, p_after_step uuid,
    OUT o_step uuid, OUT o_created timestamptz, OUT o_task uuid, OUT o_position integer)
LANGUAGE plpgsql
SET enable_sort = off
AS $$
BEGIN
    SELECT s.step_uuid, s.created_at, s.task_uuid, s.position INTO o_step, o_created, o_task, o_position
    FROM stepevents.workflow_steps s
    WHERE s.state IN ('pending', 'waiting_for_retry') AND s.unmet_parents = 0
      AND (s.created_at, s.task_uuid, s.position, s.step_uuid)
          > (p_after_created, p_after_task, p_after_position, p_after_step)
      AND (p_handlers IS NULL OR s.handler = ANY (p_handlers))
      AND (s.next_retry_at IS NULL OR s.next_retry_at <= now())
      AND (s.attempts = 0 OR (s.retryable AND NOT s.retry_blocked AND s.attempts < s.max_attempts))
      AND NOT EXISTS (
          SELECT 1
          FROM stepevents.workflow_step_edges e
          JOIN stepevents.workflow_steps ps ON ps.step_uuid = e.from_step_uuid
          WHERE e.to_step_uuid = s.step_uuid AND ps.state NOT IN ('complete', 'resolved_manually'))
    ORDER BY s.created_at, s.task_uuid, s.position, s.step_uuid
    LIMIT 1
    FOR UPDATE OF s SKIP LOCKED;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- The functions as 00013 (append_transition), 00014 (create_task), 00015
-- (apply_template) and 00017 (next_claimable_step) define them, verbatim.
DROP INDEX stepevents.workflow_steps_claim_order_idx;
CREATE INDEX workflow_steps_claim_order_idx ON stepevents.workflow_steps (created_at, task_uuid, position, step_uuid)
    WHERE state IN ('pending', 'waiting_for_retry');

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.append_transition(s stepevents.workflow_steps, p_to_state text, p_metadata jsonb)
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

-- +goose StatementBegin
-- next_claimable_step locks and returns the first claimable step in claim
-- order whose handler is in p_handlers (NULL: any) and whose claim-order
-- key comes after (p_after_created, p_after_task, p_after_position,
-- p_after_step), skipping steps other claimers hold; NULLs when there is
-- none. claim_ready_steps starts below every key ('-infinity', the nil
-- uuid, the least integer) and passes each candidate's key to the next
-- call, so a claim of several steps moves forward only. A step claimed
-- since the statement began is re-checked on its latest version and
-- passed over. The scan restates readiness cheaply (index lookups per row,
-- no aggregate) to skip blocked steps; claim_ready_steps asks the view
-- under the lock.
CREATE OR REPLACE FUNCTION stepevents.next_claimable_step(
    p_handlers text[], p_after_created timestamptz, p_after_task uuid, p_after_position integer, p_after_step uuid,
    OUT o_step uuid, OUT o_created timestamptz, OUT o_task uuid, OUT o_position integer)
LANGUAGE plpgsql
SET enable_sort = off
AS $$
BEGIN
    SELECT s.step_uuid, s.created_at, s.task_uuid, s.position INTO o_step, o_created, o_task, o_position
    FROM stepevents.workflow_steps s
    WHERE s.state IN ('pending', 'waiting_for_retry')
      AND (s.created_at, s.task_uuid, s.position, s.step_uuid)
          > (p_after_created, p_after_task, p_after_position, p_after_step)
      AND (p_handlers IS NULL OR s.handler = ANY (p_handlers))
      AND (s.next_retry_at IS NULL OR s.next_retry_at <= now())
      AND (s.attempts = 0 OR (s.retryable AND NOT s.retry_blocked AND s.attempts < s.max_attempts))
      AND NOT EXISTS (
          SELECT 1
          FROM stepevents.workflow_step_edges e
          JOIN stepevents.workflow_steps ps ON ps.step_uuid = e.from_step_uuid
          WHERE e.to_step_uuid = s.step_uuid AND ps.state NOT IN ('complete', 'resolved_manually'))
    ORDER BY s.created_at, s.task_uuid, s.position, s.step_uuid
    LIMIT 1
    FOR UPDATE OF s SKIP LOCKED;
END
$$;
-- +goose StatementEnd

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

ALTER TABLE stepevents.workflow_steps DROP COLUMN unmet_parents, DROP COLUMN depth;
ALTER TABLE stepevents.template_steps DROP COLUMN depth;
