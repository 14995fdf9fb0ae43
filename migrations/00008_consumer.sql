-- The durable consumer: the idempotent-consumer record and the dead-letter move.

-- +goose Up

-- consumed_events records which events a consumer has handled, so an event
-- delivered again (pgmq is at-least-once) is handled once. A handler that
-- inserts its row in the same transaction as its own writes gets
-- effectively-once database side effects: both commit or neither does.
CREATE TABLE stepevents.consumed_events (
    consumer   text        NOT NULL CHECK (consumer <> ''),
    event_id   uuid        NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Pruning old rows (DELETE … WHERE handled_at < …) is the operator's call:
-- a row may go once no redelivery of its event can still arrive.
CREATE INDEX consumed_events_handled_at ON stepevents.consumed_events (handled_at);

-- +goose StatementBegin
-- dead_letter moves message p_msg_id of queue p_queue to p_queue || '_dlq' in
-- one statement (so in the caller's transaction): pgmq.send to the DLQ with
-- the original headers (kept under x-dlq-original-headers when they are not
-- an object) plus x-dlq-reason, x-dlq-source-queue,
-- x-dlq-read-count, x-dlq-msg-id and x-dlq-dead-lettered-at, then
-- pgmq.delete from the source queue. It moves the message only while its
-- read_ct is still p_read_ct, i.e. no other consumer has read it since the
-- caller did (its visibility timeout may have run out meanwhile). Returns the
-- DLQ msg_id, or 0 when the message was gone or read again. The original
-- created the DLQ but never wrote to it.
CREATE FUNCTION stepevents.dead_letter(p_queue text, p_msg_id bigint, p_read_ct integer, p_reason text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_message jsonb;
    v_headers jsonb;
    v_read_ct integer;
    v_dlq_id  bigint;
BEGIN
    EXECUTE format('SELECT message, headers, read_ct FROM pgmq.%I WHERE msg_id = $1 FOR UPDATE',
                   'q_' || lower(p_queue))
        INTO v_message, v_headers, v_read_ct
        USING p_msg_id;
    IF v_read_ct IS NULL OR v_read_ct <> p_read_ct THEN
        RETURN 0;
    END IF;
    SELECT pgmq.send(
        (p_queue || '_dlq')::text,
        v_message,
        CASE WHEN jsonb_typeof(v_headers) = 'object' THEN v_headers
             WHEN v_headers IS NULL OR v_headers = 'null'::jsonb THEN '{}'::jsonb
             ELSE jsonb_build_object('x-dlq-original-headers', v_headers) END
        || jsonb_build_object(
            'x-dlq-reason', coalesce(p_reason, ''),
            'x-dlq-source-queue', p_queue,
            'x-dlq-read-count', v_read_ct,
            'x-dlq-msg-id', p_msg_id,
            'x-dlq-dead-lettered-at', clock_timestamp()))
    INTO v_dlq_id;
    PERFORM pgmq.delete(p_queue::text, p_msg_id::bigint);
    RETURN v_dlq_id;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stepevents.dead_letter(text, bigint, integer, text);
DROP TABLE stepevents.consumed_events;
