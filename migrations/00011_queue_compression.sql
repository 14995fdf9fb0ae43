-- lz4 for queue messages.
--
-- A durable event carries its step context, so a message is about 2 KB of
-- jsonb: over the TOAST threshold, compressed on every send. With the
-- default pglz that compression was a quarter to a third of pgmq.send_batch
-- (a 2-message send: 0.11-0.15 ms with pglz, 0.09-0.11 ms with lz4, about
-- the same as no compression at all; BENCHMARKS.md). lz4 keeps the rows as
-- small (1.15 KB vs 1.07 KB stored) and the WAL with them.

-- +goose Up

-- +goose StatementBegin
-- compress_queue_messages sets lz4 compression on the message column of
-- pgmq queue p_queue. A catalog change, made once: it is a no-op (true)
-- when already set, and returns false, changing nothing, when the server
-- was built without lz4, the queue does not exist, the caller does not own
-- the queue table, or the table is busy. The change takes an ACCESS
-- EXCLUSIVE lock on the queue table until the caller's transaction ends,
-- so it waits at most 200 ms for it and gives up rather than stall the
-- queue's producers. Messages already stored keep their compression.
CREATE FUNCTION stepevents.compress_queue_messages(p_queue text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_table regclass := to_regclass(format('pgmq.%I', lower('q_' || p_queue)));
    v_lock_timeout text := current_setting('lock_timeout');
    v_done boolean := true;
BEGIN
    IF v_table IS NULL OR NOT EXISTS (
        SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = v_table AND attname = 'message' AND attcompression = 'l') THEN
        RETURN true;
    END IF;
    PERFORM set_config('lock_timeout', '200ms', true);
    BEGIN
        EXECUTE format('ALTER TABLE %s ALTER COLUMN message SET COMPRESSION lz4', v_table);
    EXCEPTION WHEN insufficient_privilege OR lock_not_available THEN
        v_done := false;
    END;
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
    RETURN v_done;
END
$$;
-- +goose StatementEnd

-- Queues of templates applied before this migration.
SELECT stepevents.compress_queue_messages(namespace || '_domain_events')
FROM (SELECT DISTINCT namespace FROM stepevents.task_templates) n;

-- +goose Down
DROP FUNCTION stepevents.compress_queue_messages(text);
