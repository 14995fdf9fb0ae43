-- name: StartStep :one
SELECT * FROM stepevents.start_step(@step_uuid::uuid);

-- name: GetStepReadiness :many
SELECT * FROM stepevents.get_step_readiness_status(@task_uuid::uuid, sqlc.narg(step_uuids)::uuid[]);
