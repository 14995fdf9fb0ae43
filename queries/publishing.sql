-- name: RecordStepResult :one
-- claim_id, when set, fences the recording to that claim of the step (SE006 otherwise).
SELECT stepevents.record_step_result(
    @step_uuid::uuid, @succeeded::boolean, sqlc.narg(result)::jsonb, sqlc.narg(error)::jsonb,
    @permanent::boolean, sqlc.narg(retry_after_seconds)::double precision,
    sqlc.narg(claim_id)::bigint)::jsonb AS completion;

-- name: EmitEvents :one
SELECT stepevents.emit_events(
    @queue::text, @messages::jsonb[], @headers::jsonb[], @channel::text, @notifications::text[],
    @stash_ids::uuid[], @stash_events::jsonb[])::bigint[] AS msg_ids;

-- name: GetStashedEvents :many
SELECT event_id, event FROM stepevents.fast_event_stash WHERE event_id = ANY (@event_ids::uuid[]);

-- name: AbortTransaction :exec
-- Fails on purpose (SE007): the caller's transaction recorded a step whose
-- events could not be built or sent, and must not commit.
SELECT stepevents.abort_transaction(@reason::text);
