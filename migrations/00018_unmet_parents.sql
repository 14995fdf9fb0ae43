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
-- is skipped under SKIP LOCKED, so the two ways session 4's "blocked"
-- marks could leave a runnable step unclaimed do not arise: a step's count
-- reaches 0 in the same transaction as its last parent's completion, and
-- rolls back with it.
--
-- Readiness itself is unchanged: stepevents.step_readiness and
-- get_step_readiness_status read the edges as before, next_claimable_step
-- keeps its NOT EXISTS test and claim_ready_steps asks the view under the
-- lock. A wrong count can only hide a step from claims, never start one
-- early; TestUnmetParentsFollowEveryTransition checks the count against the
-- edges after each kind of transition.
--
-- The children are locked in (depth, step_uuid) order, depth being the
-- longest chain of dependencies above a step: a parent before its
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
COMMENT ON COLUMN stepevents.workflow_steps.unmet_parents IS
    'parents neither complete nor resolved_manually: the claim index holds pending steps whose count is 0';
COMMENT ON COLUMN stepevents.workflow_steps.depth IS
    'longest chain of dependencies above the step (0: no parents); children are locked in (depth, step_uuid) order';

-- Both for the steps that exist, in one pass. A step's depth is the
-- longest path to it along the edges; UNION keeps one row per step and
-- depth, so the paths themselves are never enumerated.
WITH RECURSIVE chain(step_uuid, depth) AS (
    SELECT e.to_step_uuid, 1 FROM stepevents.workflow_step_edges e
    UNION
    SELECT e.to_step_uuid, c.depth + 1
    FROM chain c
    JOIN stepevents.workflow_step_edges e ON e.from_step_uuid = c.step_uuid
    WHERE c.depth < (SELECT count(*) FROM stepevents.workflow_steps) -- no cycle can make it loop
)
UPDATE stepevents.workflow_steps s SET unmet_parents = coalesce(u.n, 0), depth = coalesce(d.depth, 0)
FROM stepevents.workflow_steps x
LEFT JOIN (SELECT e.to_step_uuid, count(*) AS n
           FROM stepevents.workflow_step_edges e
           JOIN stepevents.workflow_steps p ON p.step_uuid = e.from_step_uuid
           WHERE p.state NOT IN ('complete', 'resolved_manually')
           GROUP BY e.to_step_uuid) u ON u.to_step_uuid = x.step_uuid
LEFT JOIN (SELECT step_uuid, max(depth) AS depth FROM chain GROUP BY step_uuid) d ON d.step_uuid = x.step_uuid
WHERE s.step_uuid = x.step_uuid AND (u.n IS NOT NULL OR d.depth IS NOT NULL);

DROP INDEX stepevents.workflow_steps_claim_order_idx;
CREATE INDEX workflow_steps_claim_order_idx ON stepevents.workflow_steps (created_at, task_uuid, position, step_uuid)
    WHERE state IN ('pending', 'waiting_for_retry') AND unmet_parents = 0;

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
    -- same join). depth is the longest chain of dependencies above the
    -- step; the recursion stops at the number of steps, so a cycle (which
    -- the template loader refuses) cannot make it loop.
    WITH RECURSIVE chain(name, depth) AS (
        SELECT ts.name, 0 FROM stepevents.template_steps ts WHERE ts.template_id = t.template_id
        UNION
        SELECT ts.name, c.depth + 1
        FROM chain c
        JOIN stepevents.template_steps ts ON ts.template_id = t.template_id AND c.name = ANY (ts.dependencies)
        WHERE c.depth < (SELECT count(*) FROM stepevents.template_steps n WHERE n.template_id = t.template_id)
    )
    INSERT INTO stepevents.workflow_steps (step_uuid, task_uuid, name, position, handler, retryable, max_attempts,
                                           backoff, backoff_base_ms, max_backoff_ms, timeout_seconds, unmet_parents,
                                           depth)
    SELECT stepevents.uuid_v7(), p_task_uuid, ts.name, ts.position, ts.handler, ts.retryable, ts.max_attempts,
           ts.backoff, ts.backoff_base_ms, ts.max_backoff_ms, ts.timeout_seconds,
           (SELECT count(*)
            FROM unnest(ts.dependencies) AS dep(name)
            JOIN stepevents.template_steps p ON p.template_id = t.template_id AND p.name = dep.name),
           (SELECT max(c.depth) FROM chain c WHERE c.name = ts.name)
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
-- The functions as 00013 (append_transition), 00014 (create_task) and 00017
-- (next_claimable_step) define them, verbatim.
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

ALTER TABLE stepevents.workflow_steps DROP COLUMN unmet_parents, DROP COLUMN depth;
