-- Step readiness, computed in SQL so the runner, the publisher and psql users
-- all see the same answer.
--
-- is_retryable = retryable AND NOT retry_blocked AND attempts < max_attempts.
-- retry_blocked is set when the caller declared a failure permanent, so
-- is_retryable always equals the state machine's decision after a failure:
-- true  <=> the failure went to waiting_for_retry, false <=> it went to error.

-- +goose Up
-- The view is the readiness of every step; psql users may query it directly.
CREATE VIEW stepevents.step_readiness AS
SELECT s.step_uuid,
       s.task_uuid,
       s.name,
       s.state AS current_state,
       p.total_parents = p.completed_parents AS dependencies_satisfied,
       p.total_parents,
       p.completed_parents,
       s.attempts,
       s.max_attempts,
       s.retryable,
       r.is_retryable,
       s.attempts = 0 OR r.is_retryable AS retry_eligible,
       s.backoff_request_seconds,
       s.last_attempted_at,
       s.last_failure_at,
       s.next_retry_at,
       s.state IN ('pending', 'waiting_for_retry')
           AND p.total_parents = p.completed_parents
           AND (s.attempts = 0 OR r.is_retryable)
           AND (s.next_retry_at IS NULL OR s.next_retry_at <= now()) AS ready_for_execution,
       s.position
FROM stepevents.workflow_steps s
CROSS JOIN LATERAL (
    SELECT count(*)::integer AS total_parents,
           (count(*) FILTER (WHERE ps.state IN ('complete', 'resolved_manually')))::integer AS completed_parents
    FROM stepevents.workflow_step_edges e
    JOIN stepevents.workflow_steps ps ON ps.step_uuid = e.from_step_uuid
    WHERE e.to_step_uuid = s.step_uuid
) p
CROSS JOIN LATERAL (
    SELECT s.retryable AND NOT s.retry_blocked AND s.attempts < s.max_attempts AS is_retryable
) r;

-- +goose StatementBegin
-- get_step_readiness_status returns the readiness of a task's steps (all, or
-- those in step_uuids), in template order.
CREATE FUNCTION stepevents.get_step_readiness_status(task_uuid uuid, step_uuids uuid[] DEFAULT NULL)
RETURNS SETOF stepevents.step_readiness
LANGUAGE sql STABLE AS $$
    SELECT * FROM stepevents.step_readiness r
    WHERE r.task_uuid = $1 AND ($2 IS NULL OR r.step_uuid = ANY ($2))
    ORDER BY r.position
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stepevents.get_step_readiness_status(uuid, uuid[]);
DROP VIEW stepevents.step_readiness;
