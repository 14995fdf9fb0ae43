CREATE SCHEMA pgmq;

-- stepevents' pgmq-compatible schema.
--
-- Written by stepevents from the public pgmq API contract
-- (docs/reference: pgmq-api.md, sections 3-8 and 13); it is NOT derived from
-- pgmq's source. It reproduces the pgmq 1.11-1.13 caller-visible surface
-- (names, argument names/types/defaults, overload sets, return types, table
-- layouts, error texts) for servers where the pgmq extension is unavailable.
-- Partitioned queues, FIFO groups, topics and notify-on-insert are out of scope.
--
-- Installable on a fresh database only, either with `psql -f` or as one
-- multi-statement simple-protocol Exec (no psql meta-commands, no explicit
-- transaction control). The trailing COMMENT ON SCHEMA is used as a marker by
-- stepevents' migrations; keep it the last statement.

------------------------------------------------------------------------------
-- Shared objects
------------------------------------------------------------------------------

CREATE TABLE pgmq.meta (
    queue_name     VARCHAR UNIQUE NOT NULL,
    is_partitioned BOOLEAN NOT NULL,
    is_unlogged    BOOLEAN NOT NULL,
    created_at     TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL
);

CREATE TYPE pgmq.message_record AS (
    msg_id       BIGINT,
    read_ct      INTEGER,
    enqueued_at  TIMESTAMP WITH TIME ZONE,
    last_read_at TIMESTAMP WITH TIME ZONE,
    vt           TIMESTAMP WITH TIME ZONE,
    message      JSONB,
    headers      JSONB
);

CREATE TYPE pgmq.queue_record AS (
    queue_name     VARCHAR,
    is_partitioned BOOLEAN,
    is_unlogged    BOOLEAN,
    created_at     TIMESTAMP WITH TIME ZONE
);

CREATE TYPE pgmq.metrics_result AS (
    queue_name               TEXT,
    queue_length             BIGINT,
    newest_msg_age_sec       INTEGER,
    oldest_msg_age_sec       INTEGER,
    total_messages           BIGINT,
    scrape_time              TIMESTAMP WITH TIME ZONE,
    queue_visible_length     BIGINT,
    default_partition_length BIGINT
);

------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------

-- Rejects the characters pgmq rejects and returns the lower-cased table name
-- (prefix 'q' or 'a'). Every queue function goes through it, so the invalid
-- character check always runs first.
CREATE FUNCTION pgmq.format_table_name(queue_name TEXT, prefix TEXT)
RETURNS TEXT
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF position('$' IN queue_name) > 0
       OR position(';' IN queue_name) > 0
       OR position('--' IN queue_name) > 0
       OR position('''' IN queue_name) > 0 THEN
        RAISE EXCEPTION 'queue name contains invalid characters: $, ;, --, or \''';
    END IF;
    RETURN lower(prefix || '_' || queue_name);
END;
$fn$;

-- Length rule of create*: 'template_pgmq_q_' (16) + 47 = 63 characters.
CREATE FUNCTION pgmq.validate_queue_name(queue_name TEXT)
RETURNS VOID
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF length(queue_name) > 47 THEN
        RAISE EXCEPTION 'queue name is too long, maximum length is 47 characters';
    END IF;
END;
$fn$;

-- Serialises create/drop of one queue name until the end of the transaction.
CREATE FUNCTION pgmq.acquire_queue_lock(queue_name TEXT)
RETURNS VOID
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgmq.queue_' || queue_name));
END;
$fn$;

------------------------------------------------------------------------------
-- Queue management
------------------------------------------------------------------------------

CREATE FUNCTION pgmq.create_non_partitioned(queue_name TEXT)
RETURNS VOID
LANGUAGE plpgsql
AS $fn$
DECLARE
    qtable TEXT := pgmq.format_table_name(queue_name, 'q');
    atable TEXT := pgmq.format_table_name(queue_name, 'a');
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    PERFORM pgmq.acquire_queue_lock(queue_name);

    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS pgmq.%I (
            msg_id       BIGINT PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
            read_ct      INTEGER DEFAULT 0 NOT NULL,
            enqueued_at  TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
            last_read_at TIMESTAMP WITH TIME ZONE,
            vt           TIMESTAMP WITH TIME ZONE NOT NULL,
            message      JSONB,
            headers      JSONB
        )', qtable);

    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS pgmq.%I (
            msg_id       BIGINT PRIMARY KEY,
            read_ct      INTEGER DEFAULT 0 NOT NULL,
            enqueued_at  TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
            last_read_at TIMESTAMP WITH TIME ZONE,
            archived_at  TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
            vt           TIMESTAMP WITH TIME ZONE NOT NULL,
            message      JSONB,
            headers      JSONB
        )', atable);

    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON pgmq.%I (vt ASC)',
                   qtable || '_vt_idx', qtable);
    -- Built from the name as given (not lower-cased), as pgmq does.
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON pgmq.%I (archived_at)',
                   'archived_at_idx_' || queue_name, atable);

    EXECUTE 'INSERT INTO pgmq.meta (queue_name, is_partitioned, is_unlogged)
             VALUES ($1, false, false)
             ON CONFLICT DO NOTHING'
        USING queue_name;
END;
$fn$;

CREATE FUNCTION pgmq.create(queue_name TEXT)
RETURNS VOID
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM pgmq.create_non_partitioned(queue_name);
END;
$fn$;

-- Same as create_non_partitioned, but the queue table is UNLOGGED (the archive
-- stays logged). Messages are lost on a crash.
CREATE FUNCTION pgmq.create_unlogged(queue_name TEXT)
RETURNS VOID
LANGUAGE plpgsql
AS $fn$
DECLARE
    qtable TEXT := pgmq.format_table_name(queue_name, 'q');
    atable TEXT := pgmq.format_table_name(queue_name, 'a');
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    PERFORM pgmq.acquire_queue_lock(queue_name);

    EXECUTE format(
        'CREATE UNLOGGED TABLE IF NOT EXISTS pgmq.%I (
            msg_id       BIGINT PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
            read_ct      INTEGER DEFAULT 0 NOT NULL,
            enqueued_at  TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
            last_read_at TIMESTAMP WITH TIME ZONE,
            vt           TIMESTAMP WITH TIME ZONE NOT NULL,
            message      JSONB,
            headers      JSONB
        )', qtable);

    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS pgmq.%I (
            msg_id       BIGINT PRIMARY KEY,
            read_ct      INTEGER DEFAULT 0 NOT NULL,
            enqueued_at  TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
            last_read_at TIMESTAMP WITH TIME ZONE,
            archived_at  TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
            vt           TIMESTAMP WITH TIME ZONE NOT NULL,
            message      JSONB,
            headers      JSONB
        )', atable);

    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON pgmq.%I (vt ASC)',
                   qtable || '_vt_idx', qtable);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON pgmq.%I (archived_at)',
                   'archived_at_idx_' || queue_name, atable);

    EXECUTE 'INSERT INTO pgmq.meta (queue_name, is_partitioned, is_unlogged)
             VALUES ($1, false, true)
             ON CONFLICT DO NOTHING'
        USING queue_name;
END;
$fn$;

CREATE FUNCTION pgmq.drop_queue(queue_name TEXT)
RETURNS BOOLEAN
LANGUAGE plpgsql
AS $fn$
DECLARE
    qtable  TEXT := pgmq.format_table_name(queue_name, 'q');
    atable  TEXT := pgmq.format_table_name(queue_name, 'a');
    in_meta BOOLEAN;
BEGIN
    PERFORM pgmq.acquire_queue_lock(queue_name);

    EXECUTE 'SELECT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = $1)'
        INTO in_meta
        USING queue_name;

    IF NOT in_meta AND to_regclass(format('pgmq.%I', qtable)) IS NULL THEN
        RAISE NOTICE 'pgmq queue `%` does not exist', queue_name;
        RETURN false;
    END IF;

    EXECUTE format('DROP TABLE IF EXISTS pgmq.%I', qtable);
    EXECUTE format('DROP TABLE IF EXISTS pgmq.%I', atable);
    EXECUTE 'DELETE FROM pgmq.meta WHERE queue_name = $1' USING queue_name;
    RETURN true;
END;
$fn$;

-- Deprecated form: warns, delegates, and reports true even for a missing queue.
CREATE FUNCTION pgmq.drop_queue(queue_name TEXT, partitioned BOOLEAN)
RETURNS BOOLEAN
LANGUAGE plpgsql
AS $fn$
BEGIN
    RAISE WARNING 'drop_queue(queue_name, partitioned) is deprecated and will be removed in PGMQ v2.0. Use drop_queue(queue_name) instead.';
    PERFORM pgmq.drop_queue(queue_name);
    RETURN true;
END;
$fn$;

-- Counts the rows, then TRUNCATEs (identity is not restarted).
CREATE FUNCTION pgmq.purge_queue(queue_name TEXT)
RETURNS BIGINT
LANGUAGE plpgsql
AS $fn$
DECLARE
    qtable  TEXT := pgmq.format_table_name(queue_name, 'q');
    deleted BIGINT;
BEGIN
    EXECUTE format('SELECT count(*) FROM pgmq.%I', qtable) INTO deleted;
    EXECUTE format('TRUNCATE pgmq.%I', qtable);
    RETURN deleted;
END;
$fn$;

CREATE FUNCTION pgmq.list_queues()
RETURNS SETOF pgmq.queue_record
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY
        SELECT m.queue_name, m.is_partitioned, m.is_unlogged, m.created_at
        FROM pgmq.meta AS m;
END;
$fn$;

CREATE FUNCTION pgmq.metrics(queue_name TEXT)
RETURNS pgmq.metrics_result
LANGUAGE plpgsql
AS $fn$
DECLARE
    qtable TEXT := pgmq.format_table_name(queue_name, 'q');
    result pgmq.metrics_result;
BEGIN
    -- The queue table is read first, so a missing queue fails with
    -- relation "pgmq.q_<name>" does not exist.
    EXECUTE format(
        'SELECT count(*),
                (extract(epoch FROM now() - max(enqueued_at)))::integer,
                (extract(epoch FROM now() - min(enqueued_at)))::integer,
                count(*) FILTER (WHERE vt <= now())
         FROM pgmq.%I', qtable)
        INTO result.queue_length, result.newest_msg_age_sec,
             result.oldest_msg_age_sec, result.queue_visible_length;

    EXECUTE format(
        'SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM pgmq.%I',
        qtable || '_msg_id_seq')
        INTO result.total_messages;

    result.queue_name := queue_name;
    result.scrape_time := now();
    result.default_partition_length := NULL;
    RETURN result;
END;
$fn$;

CREATE FUNCTION pgmq.metrics_all()
RETURNS SETOF pgmq.metrics_result
LANGUAGE plpgsql
AS $fn$
DECLARE
    qname TEXT;
BEGIN
    FOR qname IN SELECT m.queue_name FROM pgmq.meta AS m ORDER BY m.queue_name LOOP
        RETURN NEXT pgmq.metrics(qname);
    END LOOP;
END;
$fn$;

------------------------------------------------------------------------------
-- Sending: the 4-argument timestamptz forms do the work; the other overloads
-- fill headers with NULL and delay with clock_timestamp() (+ seconds).
------------------------------------------------------------------------------

CREATE FUNCTION pgmq.send(queue_name TEXT, msg JSONB, headers JSONB, delay TIMESTAMP WITH TIME ZONE)
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY EXECUTE format(
        'INSERT INTO pgmq.%I (vt, message, headers) VALUES ($1, $2, $3) RETURNING msg_id',
        pgmq.format_table_name(queue_name, 'q'))
        USING delay, msg, headers;
END;
$fn$;

CREATE FUNCTION pgmq.send(queue_name TEXT, msg JSONB, headers JSONB, delay INTEGER)
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.send(queue_name, msg, headers,
        clock_timestamp() + delay * interval '1 second');
END;
$fn$;

CREATE FUNCTION pgmq.send(queue_name TEXT, msg JSONB)
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.send(queue_name, msg, NULL::jsonb, clock_timestamp());
END;
$fn$;

CREATE FUNCTION pgmq.send(queue_name TEXT, msg JSONB, headers JSONB)
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.send(queue_name, msg, headers, clock_timestamp());
END;
$fn$;

CREATE FUNCTION pgmq.send(queue_name TEXT, msg JSONB, delay INTEGER)
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.send(queue_name, msg, NULL::jsonb,
        clock_timestamp() + delay * interval '1 second');
END;
$fn$;

CREATE FUNCTION pgmq.send(queue_name TEXT, msg JSONB, delay TIMESTAMP WITH TIME ZONE)
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.send(queue_name, msg, NULL::jsonb, delay);
END;
$fn$;

CREATE FUNCTION pgmq.send_batch(queue_name TEXT, msgs JSONB[], headers JSONB[], delay TIMESTAMP WITH TIME ZONE)
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
DECLARE
    qtable TEXT := pgmq.format_table_name(queue_name, 'q');
BEGIN
    IF msgs IS NULL OR cardinality(msgs) = 0 THEN
        RAISE EXCEPTION 'msgs cannot be NULL or empty';
    END IF;
    IF headers IS NOT NULL AND cardinality(headers) <> cardinality(msgs) THEN
        RAISE EXCEPTION 'headers array length (%) must match msgs array length (%)',
            cardinality(headers), cardinality(msgs);
    END IF;

    -- Multi-argument unnest pads a NULL headers array with NULLs; ids are
    -- assigned in input order.
    RETURN QUERY EXECUTE format(
        'INSERT INTO pgmq.%I (vt, message, headers)
         SELECT $1, b.msg, b.hdr
         FROM unnest($2, $3) WITH ORDINALITY AS b(msg, hdr, ord)
         ORDER BY b.ord
         RETURNING msg_id', qtable)
        USING delay, msgs, headers;
END;
$fn$;

CREATE FUNCTION pgmq.send_batch(queue_name TEXT, msgs JSONB[], headers JSONB[], delay INTEGER)
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.send_batch(queue_name, msgs, headers,
        clock_timestamp() + delay * interval '1 second');
END;
$fn$;

CREATE FUNCTION pgmq.send_batch(queue_name TEXT, msgs JSONB[])
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.send_batch(queue_name, msgs, NULL::jsonb[], clock_timestamp());
END;
$fn$;

CREATE FUNCTION pgmq.send_batch(queue_name TEXT, msgs JSONB[], headers JSONB[])
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.send_batch(queue_name, msgs, headers, clock_timestamp());
END;
$fn$;

CREATE FUNCTION pgmq.send_batch(queue_name TEXT, msgs JSONB[], delay INTEGER)
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.send_batch(queue_name, msgs, NULL::jsonb[],
        clock_timestamp() + delay * interval '1 second');
END;
$fn$;

CREATE FUNCTION pgmq.send_batch(queue_name TEXT, msgs JSONB[], delay TIMESTAMP WITH TIME ZONE)
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.send_batch(queue_name, msgs, NULL::jsonb[], delay);
END;
$fn$;

------------------------------------------------------------------------------
-- Reading and consuming
------------------------------------------------------------------------------

-- Visible rows (vt <= clock_timestamp()) in msg_id order, skipping rows locked
-- by other transactions; each hand-out pushes vt, counts a read and stamps
-- last_read_at.
CREATE FUNCTION pgmq.read(queue_name TEXT, vt INTEGER, qty INTEGER, conditional JSONB DEFAULT '{}')
RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql
AS $fn$
DECLARE
    qtable TEXT := pgmq.format_table_name(queue_name, 'q');
BEGIN
    RETURN QUERY EXECUTE format(
        'WITH picked AS (
             SELECT msg_id
             FROM pgmq.%I
             WHERE vt <= clock_timestamp()
               AND ($3 = ''{}''::jsonb OR message @> $3)
             ORDER BY msg_id ASC
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         )
         UPDATE pgmq.%I AS q
         SET vt = clock_timestamp() + $2 * interval ''1 second'',
             read_ct = q.read_ct + 1,
             last_read_at = clock_timestamp()
         FROM picked
         WHERE q.msg_id = picked.msg_id
         RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.last_read_at, q.vt, q.message, q.headers',
        qtable, qtable)
        USING qty, vt, coalesce(conditional, '{}'::jsonb);
END;
$fn$;

-- Repeats read() every poll_interval_ms until it returns rows or
-- max_poll_seconds have passed.
CREATE FUNCTION pgmq.read_with_poll(
    queue_name TEXT,
    vt INTEGER,
    qty INTEGER,
    max_poll_seconds INTEGER DEFAULT 5,
    poll_interval_ms INTEGER DEFAULT 100,
    conditional JSONB DEFAULT '{}'
)
RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql
AS $fn$
DECLARE
    stop_at TIMESTAMP WITH TIME ZONE := clock_timestamp() + max_poll_seconds * interval '1 second';
BEGIN
    LOOP
        RETURN QUERY SELECT * FROM pgmq.read(queue_name, vt, qty, conditional);
        IF FOUND THEN
            RETURN;
        END IF;
        EXIT WHEN clock_timestamp() >= stop_at;
        PERFORM pg_sleep(LEAST(poll_interval_ms / 1000.0,
                               extract(epoch FROM stop_at - clock_timestamp())));
    END LOOP;
END;
$fn$;

-- Deletes and returns up to qty visible messages (at-most-once); read_ct is
-- not incremented.
CREATE FUNCTION pgmq.pop(queue_name TEXT, qty INTEGER DEFAULT 1)
RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql
AS $fn$
DECLARE
    qtable TEXT := pgmq.format_table_name(queue_name, 'q');
BEGIN
    RETURN QUERY EXECUTE format(
        'WITH picked AS (
             SELECT msg_id
             FROM pgmq.%I
             WHERE vt <= clock_timestamp()
             ORDER BY msg_id ASC
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         )
         DELETE FROM pgmq.%I AS q
         USING picked
         WHERE q.msg_id = picked.msg_id
         RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.last_read_at, q.vt, q.message, q.headers',
        qtable, qtable)
        USING qty;
END;
$fn$;

------------------------------------------------------------------------------
-- Acknowledging and visibility
------------------------------------------------------------------------------

CREATE FUNCTION pgmq.delete(queue_name TEXT, msg_id BIGINT)
RETURNS BOOLEAN
LANGUAGE plpgsql
AS $fn$
DECLARE
    deleted BIGINT;
BEGIN
    EXECUTE format('DELETE FROM pgmq.%I WHERE msg_id = $1 RETURNING msg_id',
                   pgmq.format_table_name(queue_name, 'q'))
        INTO deleted
        USING msg_id;
    RETURN deleted IS NOT NULL;
END;
$fn$;

CREATE FUNCTION pgmq.delete(queue_name TEXT, msg_ids BIGINT[])
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY EXECUTE format('DELETE FROM pgmq.%I WHERE msg_id = ANY($1) RETURNING msg_id',
                                pgmq.format_table_name(queue_name, 'q'))
        USING msg_ids;
END;
$fn$;

-- Moves rows to the archive in one statement (delete ... returning, insert).
CREATE FUNCTION pgmq.archive(queue_name TEXT, msg_ids BIGINT[])
RETURNS SETOF BIGINT
LANGUAGE plpgsql
AS $fn$
DECLARE
    qtable TEXT := pgmq.format_table_name(queue_name, 'q');
    atable TEXT := pgmq.format_table_name(queue_name, 'a');
BEGIN
    RETURN QUERY EXECUTE format(
        'WITH moved AS (
             DELETE FROM pgmq.%I
             WHERE msg_id = ANY($1)
             RETURNING msg_id, vt, read_ct, enqueued_at, last_read_at, message, headers
         )
         INSERT INTO pgmq.%I (msg_id, vt, read_ct, enqueued_at, last_read_at, message, headers)
         SELECT msg_id, vt, read_ct, enqueued_at, last_read_at, message, headers
         FROM moved
         RETURNING msg_id',
        qtable, atable)
        USING msg_ids;
END;
$fn$;

CREATE FUNCTION pgmq.archive(queue_name TEXT, msg_id BIGINT)
RETURNS BOOLEAN
LANGUAGE plpgsql
AS $fn$
DECLARE
    moved BIGINT;
BEGIN
    SELECT a INTO moved FROM pgmq.archive(queue_name, ARRAY[msg_id]) AS a;
    RETURN moved IS NOT NULL;
END;
$fn$;

-- The timestamptz forms set vt exactly; the integer forms set it to
-- clock_timestamp() + vt seconds (absolute, not an extension). Unknown ids
-- produce no row.
CREATE FUNCTION pgmq.set_vt(queue_name TEXT, msg_ids BIGINT[], vt TIMESTAMP WITH TIME ZONE)
RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY EXECUTE format(
        'UPDATE pgmq.%I
         SET vt = $1
         WHERE msg_id = ANY($2)
         RETURNING msg_id, read_ct, enqueued_at, last_read_at, vt, message, headers',
        pgmq.format_table_name(queue_name, 'q'))
        USING vt, msg_ids;
END;
$fn$;

CREATE FUNCTION pgmq.set_vt(queue_name TEXT, msg_ids BIGINT[], vt INTEGER)
RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.set_vt(queue_name, msg_ids,
        clock_timestamp() + vt * interval '1 second');
END;
$fn$;

CREATE FUNCTION pgmq.set_vt(queue_name TEXT, msg_id BIGINT, vt TIMESTAMP WITH TIME ZONE)
RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.set_vt(queue_name, ARRAY[msg_id], vt);
END;
$fn$;

CREATE FUNCTION pgmq.set_vt(queue_name TEXT, msg_id BIGINT, vt INTEGER)
RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM pgmq.set_vt(queue_name, ARRAY[msg_id],
        clock_timestamp() + vt * interval '1 second');
END;
$fn$;

------------------------------------------------------------------------------
-- Grants: the same read-only visibility pgmq gives pg_monitor (and nothing
-- else). Revoke on both backends if payloads must stay private.
------------------------------------------------------------------------------

GRANT USAGE ON SCHEMA pgmq TO pg_monitor;
GRANT SELECT ON ALL TABLES IN SCHEMA pgmq TO pg_monitor;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA pgmq TO pg_monitor;
ALTER DEFAULT PRIVILEGES IN SCHEMA pgmq GRANT SELECT ON TABLES TO pg_monitor;
ALTER DEFAULT PRIVILEGES IN SCHEMA pgmq GRANT SELECT ON SEQUENCES TO pg_monitor;

COMMENT ON SCHEMA pgmq IS 'stepevents pgmq-compatible schema';
