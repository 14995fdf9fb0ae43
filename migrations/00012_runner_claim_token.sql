-- A claim token for every attempt: workflow_steps.claim_id.
--
-- The runner records an outcome only if the attempt it ran is still the
-- step's in_progress attempt. The attempt number cannot tell: release_step
-- refunds an attempt and reset_step zeroes the count, so the next claim of
-- the step gets the number of an earlier, maybe still running, attempt
-- again. claim_id is never reused: start_step (every claim, the runner's
-- claim_ready_steps included) sets it to the transition_id of the
-- in_progress transition row it writes, an identity value. The runner
-- keeps the claim_id its claim returned and records only while the step is
-- in_progress with that same claim_id (see queries/runner.sql, LockClaim).

-- +goose Up
ALTER TABLE stepevents.workflow_steps ADD COLUMN claim_id bigint;
COMMENT ON COLUMN stepevents.workflow_steps.claim_id IS
    'transition_id of the in_progress transition that started the latest attempt: identifies the claim, never reused';

-- Steps in progress now get the claim that started them.
UPDATE stepevents.workflow_steps s
SET claim_id = t.transition_id
FROM stepevents.workflow_step_transitions t
WHERE t.step_uuid = s.step_uuid AND t.most_recent AND s.state = 'in_progress';

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

-- +goose Down
-- start_step as 00005_step_operations.sql defines it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.start_step(p_step_uuid uuid)
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
ALTER TABLE stepevents.workflow_steps DROP COLUMN claim_id;
