-- name: CreateTask :one
SELECT stepevents.create_task(
    @namespace::text, @name::text, sqlc.narg(version)::text, @context::jsonb,
    @task_uuid::uuid, sqlc.narg(correlation_id)::uuid)::uuid AS task_uuid;

-- name: GetTask :one
SELECT * FROM stepevents.tasks WHERE task_uuid = @task_uuid::uuid;

-- name: ListTaskSteps :many
SELECT * FROM stepevents.workflow_steps WHERE task_uuid = @task_uuid::uuid ORDER BY position;
