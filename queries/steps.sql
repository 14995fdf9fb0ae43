-- name: StartStep :one
SELECT * FROM stepevents.start_step(@step_uuid::uuid);

-- name: ReleaseStep :one
SELECT * FROM stepevents.release_step(@step_uuid::uuid, @reason::text);

-- name: ResolveStep :one
SELECT * FROM stepevents.resolve_step(@step_uuid::uuid, @note::text);

-- name: ResetStep :one
SELECT * FROM stepevents.reset_step(@step_uuid::uuid, @note::text);

-- name: CancelStep :one
SELECT * FROM stepevents.cancel_step(@step_uuid::uuid, @note::text);

-- name: GetStep :one
SELECT * FROM stepevents.workflow_steps WHERE step_uuid = @step_uuid::uuid;

-- name: GetStepReadiness :many
SELECT * FROM stepevents.get_step_readiness_status(@task_uuid::uuid, sqlc.narg(step_uuids)::uuid[]);

-- name: ListStepTransitions :many
SELECT * FROM stepevents.workflow_step_transitions
WHERE step_uuid = @step_uuid::uuid
ORDER BY sort_key;
