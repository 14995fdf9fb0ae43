-- name: MarkEventHandled :execrows
-- Records that consumer handled event_id; 0 rows means it already had.
INSERT INTO stepevents.consumed_events (consumer, event_id)
VALUES (@consumer::text, @event_id::uuid)
ON CONFLICT (consumer, event_id) DO NOTHING;

-- name: DeadLetterMessage :one
SELECT coalesce(stepevents.dead_letter(@queue::text, @msg_id::bigint, @read_ct::integer, @reason::text), 0)::bigint AS dlq_msg_id;
