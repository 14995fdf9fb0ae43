-- name: ClaimReadySteps :many
-- The task is read with the statement's snapshot, taken before the claim:
-- its state may not yet show the claim itself.
SELECT s.*, t.namespace AS task_namespace, t.template_name AS task_template_name,
       t.template_version AS task_template_version, t.context AS task_context,
       t.correlation_id AS task_correlation_id, t.state AS task_state, t.created_at AS task_created_at,
       t.completed_at AS task_completed_at
FROM stepevents.claim_ready_steps(@claim_limit::integer, sqlc.narg(handlers)::text[]) s
JOIN stepevents.tasks t ON t.task_uuid = s.task_uuid;

-- name: StaleSteps :many
SELECT * FROM stepevents.stale_steps(
    make_interval(secs => @older_than_seconds::double precision),
    make_interval(secs => @default_timeout_seconds::double precision),
    @max_steps::integer,
    sqlc.narg(handlers)::text[],
    @exclude::uuid[]);

-- name: LockClaim :one
-- Locks the step for the rest of the caller's transaction if it is
-- in_progress under the claim claim_id (see workflow_steps.claim_id) and
-- returns its attempt; no row when that claim is over. The conditions are
-- rechecked on the row's latest version once locked.
SELECT attempts FROM stepevents.workflow_steps
WHERE step_uuid = @step_uuid::uuid AND state = 'in_progress' AND claim_id = @claim_id::bigint
FOR UPDATE;

-- name: RecordedUnderClaim :one
-- Whether the attempt that claim claim_id started was ended by this very
-- outcome: completed with result (none: JSON null, as complete_step stores
-- it), or failed with the message error_message_json (JSON-encoded as the
-- error document encodes it) and permanent. The runner asks it when a
-- retried recording finds the attempt over, to recognise an earlier try
-- that committed but whose reply was lost (the closing transition is the
-- one after the claim's; complete is terminal, so the step's results are
-- still the ones recorded).
SELECT EXISTS (
    SELECT FROM stepevents.workflow_step_transitions c
    JOIN stepevents.workflow_step_transitions tr ON tr.step_uuid = c.step_uuid AND tr.sort_key = c.sort_key + 1
    JOIN stepevents.workflow_steps s ON s.step_uuid = c.step_uuid
    WHERE c.transition_id = @claim_id::bigint AND c.step_uuid = @step_uuid::uuid AND c.to_state = 'in_progress'
      AND CASE WHEN @succeeded::boolean
               THEN tr.to_state = 'complete' AND s.results = coalesce(sqlc.narg(result)::jsonb, 'null'::jsonb)
               ELSE tr.to_state IN ('waiting_for_retry', 'error')
                    AND tr.metadata->'error' = @error_message_json::jsonb
                    AND (tr.metadata->>'permanent')::boolean = @permanent::boolean
          END
) AS recorded;
