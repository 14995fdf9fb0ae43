-- stepevents least-privilege roles (embedded as sqlscripts.Roles).
--
-- Three NOLOGIN group roles. Make each service's LOGIN role a member of one:
--
--   stepevents_producer  records step results and publishes their events: the
--                        stepevents functions events.Client and the runner call,
--                        the table privileges those SECURITY INVOKER functions
--                        need, and INSERT (plus SELECT of msg_id only, for
--                        INSERT ... RETURNING msg_id) on each namespace queue.
--                        It cannot read queued payloads, delete or archive
--                        messages, apply templates, resolve/reset/cancel steps,
--                        create or drop queues, or run migrations.
--   stepevents_consumer  reads, deletes and archives the queues of the
--                        namespaces granted to it (stepevents.grant_consumer)
--                        and dead-letters their messages; it cannot send to its
--                        queue, touch another namespace's queues, or read or
--                        change tasks, steps, templates or the fast-event stash.
--   stepevents_listener  LISTENs (every role can) and reads
--                        stepevents.fast_event_stash to resolve oversized fast
--                        events; nothing else.
--
-- Run it as the role that owns schema stepevents and the pgmq queue tables
-- (the one that runs migrations and applies templates), with CREATEROLE. It
-- is idempotent: run it again after every migration (new functions start
-- executable by PUBLIC and are locked down here) and after applying a
-- template with a new namespace (the producer group is granted every
-- namespace that has queues). Everything runs in one transaction when sent as
-- one multi-statement Exec or with psql --single-transaction.
--
-- Per namespace, for a service role (or a per-namespace group):
--   SELECT stepevents.grant_consumer('orders_consumer', 'orders');
--   SELECT stepevents.grant_producer('orders_worker', 'orders');
--   SELECT stepevents.revoke_queue_access('orders_consumer', 'orders');
--
-- What this does not do (see SECURITY.md): NOTIFY and LISTEN have no
-- privileges, so any role that can connect to the database can read and send
-- fast events; CONNECT on the database is granted to PUBLIC by default;
-- pg_monitor can read every queue (see the end of this file).

-- 1. The group roles. Roles are cluster-wide, so two databases may run this
-- script at once: a concurrent CREATE ROLE is not an error.
DO $$
DECLARE
    r text;
    v_super boolean;
BEGIN
    FOREACH r IN ARRAY ARRAY['stepevents_producer', 'stepevents_consumer', 'stepevents_listener'] LOOP
        SELECT rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb INTO v_super FROM pg_roles WHERE rolname = r;
        IF NOT FOUND THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created meanwhile by another session
            END;
        ELSIF v_super THEN
            RAISE EXCEPTION 'role % exists with SUPERUSER, BYPASSRLS, CREATEROLE or CREATEDB; '
                'stepevents will not grant to it', r USING ERRCODE = 'SE005';
        END IF;
    END LOOP;
END
$$;

-- 2. Per-namespace queue grants. SECURITY INVOKER: only a role that owns the
-- queue tables (or a superuser) can run them. Names are checked, then quoted
-- with format('%I'): no SQL is built from unchecked strings.
CREATE OR REPLACE FUNCTION stepevents.queue_grant_target(p_role text, p_namespace text)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_namespace IS NULL OR p_namespace !~ '^[a-z][a-z0-9_]{0,28}$' THEN
        RAISE EXCEPTION 'namespace % must match ^[a-z][a-z0-9_]{0,28}$', quote_nullable(p_namespace)
            USING ERRCODE = 'SE005';
    END IF;
    IF p_role IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_role) THEN
        RAISE EXCEPTION 'role % does not exist', quote_nullable(p_role) USING ERRCODE = 'SE001';
    END IF;
    IF to_regclass(format('pgmq.%I', 'q_' || p_namespace || '_domain_events')) IS NULL
       OR to_regclass(format('pgmq.%I', 'q_' || p_namespace || '_domain_events_dlq')) IS NULL THEN
        RAISE EXCEPTION 'namespace % has no queues', p_namespace USING ERRCODE = 'SE001',
            HINT = 'apply a template of this namespace first';
    END IF;
    RETURN p_namespace || '_domain_events';
END
$$;

-- grant_producer lets p_role publish to the namespace's queue: INSERT, and
-- SELECT of msg_id alone (pgmq.send returns it). Not the payloads, not the DLQ.
CREATE OR REPLACE FUNCTION stepevents.grant_producer(p_role text, p_namespace text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    q text := stepevents.queue_grant_target(p_role, p_namespace);
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA pgmq TO %I', p_role);
    EXECUTE format('GRANT INSERT, SELECT (msg_id) ON pgmq.%I TO %I', 'q_' || q, p_role);
END
$$;

-- grant_consumer lets p_role read (pgmq.read, set_vt, metrics), delete and
-- archive the namespace's queue and its DLQ, and dead-letter into the DLQ.
-- It cannot send to the main queue.
CREATE OR REPLACE FUNCTION stepevents.grant_consumer(p_role text, p_namespace text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    q   text := stepevents.queue_grant_target(p_role, p_namespace);
    t   text;
    seq text;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA pgmq TO %I', p_role);
    FOREACH t IN ARRAY ARRAY[q, q || '_dlq'] LOOP
        EXECUTE format('GRANT SELECT, UPDATE, DELETE ON pgmq.%I TO %I', 'q_' || t, p_role);
        EXECUTE format('GRANT SELECT, INSERT ON pgmq.%I TO %I', 'a_' || t, p_role);
        seq := pg_get_serial_sequence(format('pgmq.%I', 'q_' || t), 'msg_id'); -- read by pgmq.metrics
        IF seq IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON SEQUENCE %s TO %I', seq, p_role);
        END IF;
    END LOOP;
    EXECUTE format('GRANT INSERT ON pgmq.%I TO %I', 'q_' || q || '_dlq', p_role);
END
$$;

-- revoke_queue_access takes back every privilege p_role holds on the
-- namespace's queues (schema usage stays: it may hold other namespaces).
CREATE OR REPLACE FUNCTION stepevents.revoke_queue_access(p_role text, p_namespace text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    q   text := stepevents.queue_grant_target(p_role, p_namespace);
    t   text;
    seq text;
BEGIN
    FOREACH t IN ARRAY ARRAY[q, q || '_dlq'] LOOP
        EXECUTE format('REVOKE ALL ON pgmq.%I, pgmq.%I FROM %I', 'q_' || t, 'a_' || t, p_role);
        EXECUTE format('REVOKE SELECT (msg_id) ON pgmq.%I FROM %I', 'q_' || t, p_role);
        seq := pg_get_serial_sequence(format('pgmq.%I', 'q_' || t), 'msg_id');
        IF seq IS NOT NULL THEN
            EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %I', seq, p_role);
        END IF;
    END LOOP;
END
$$;

-- 3. Start from nothing in schema stepevents: functions are executable by
-- PUBLIC when created, and earlier runs of this script may have granted more
-- than this one does.
REVOKE ALL ON SCHEMA stepevents FROM PUBLIC, stepevents_producer, stepevents_consumer, stepevents_listener;
REVOKE ALL ON ALL TABLES IN SCHEMA stepevents FROM PUBLIC, stepevents_producer, stepevents_consumer, stepevents_listener;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA stepevents FROM PUBLIC, stepevents_producer, stepevents_consumer, stepevents_listener;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA stepevents FROM PUBLIC, stepevents_producer, stepevents_consumer, stepevents_listener;
DO $$
DECLARE
    c record;
BEGIN
    -- Column grants survive REVOKE ALL on the table; clear them too.
    FOR c IN
        SELECT DISTINCT a.attrelid::regclass AS rel, a.attname, g.rolname
        FROM pg_attribute a
        JOIN pg_class k ON k.oid = a.attrelid
        CROSS JOIN LATERAL aclexplode(a.attacl) x
        JOIN pg_roles g ON g.oid = x.grantee
        WHERE k.relnamespace = 'stepevents'::regnamespace AND a.attacl IS NOT NULL
          AND g.rolname IN ('stepevents_producer', 'stepevents_consumer', 'stepevents_listener')
    LOOP
        EXECUTE format('REVOKE ALL (%I) ON %s FROM %I', c.attname, c.rel, c.rolname);
    END LOOP;
END
$$;

-- 4. The producer: what events.Client (CompleteStep/FailStep, CreateTask,
-- StartStep, ReleaseStep, Readiness) and the runner execute. Our functions
-- are SECURITY INVOKER, so the producer also needs the table privileges they
-- use: it could UPDATE step rows directly, bypassing the state machine (see
-- SECURITY.md). It may not DELETE or TRUNCATE them, nor write templates.
GRANT USAGE ON SCHEMA stepevents TO stepevents_producer;
GRANT SELECT ON stepevents.task_templates, stepevents.template_steps, stepevents.event_declarations,
    stepevents.step_readiness TO stepevents_producer;
GRANT SELECT, INSERT, UPDATE ON stepevents.tasks, stepevents.workflow_steps, stepevents.workflow_step_transitions
    TO stepevents_producer;
GRANT SELECT, INSERT ON stepevents.workflow_step_edges TO stepevents_producer;
-- emit_events stashes oversized fast events and prunes rows older than an
-- hour; reading stashed events is the listener's job, so no SELECT of event.
GRANT INSERT, DELETE ON stepevents.fast_event_stash TO stepevents_producer;
GRANT SELECT (event_id, created_at) ON stepevents.fast_event_stash TO stepevents_producer;

-- 5. The consumer touches no workflow table: only its idempotency record and
-- the dead-letter move, when the durable consumer's migration is installed.
DO $$
BEGIN
    IF to_regclass('stepevents.consumed_events') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA stepevents TO stepevents_consumer;
        GRANT SELECT, INSERT ON stepevents.consumed_events TO stepevents_consumer;
    END IF;
END
$$;

-- 6. The listener: the stash, read-only.
GRANT USAGE ON SCHEMA stepevents TO stepevents_listener;
GRANT SELECT ON stepevents.fast_event_stash TO stepevents_listener;

-- 7. EXECUTE, by function name (every overload), on what exists.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure AS fn, g.role
        FROM pg_proc p
        JOIN (VALUES
            ('record_step_result', 'stepevents_producer'), ('emit_events', 'stepevents_producer'),
            ('create_task', 'stepevents_producer'), ('start_step', 'stepevents_producer'),
            ('release_step', 'stepevents_producer'), ('complete_step', 'stepevents_producer'),
            ('fail_step', 'stepevents_producer'), ('get_step_readiness_status', 'stepevents_producer'),
            ('lock_step', 'stepevents_producer'), ('transition_step', 'stepevents_producer'),
            ('append_transition', 'stepevents_producer'), ('uuid_v7', 'stepevents_producer'),
            ('refresh_task_state', 'stepevents_producer'), ('step_transition_allowed', 'stepevents_producer'),
            ('backoff_seconds', 'stepevents_producer'), ('should_publish', 'stepevents_producer'),
            ('require_in_progress', 'stepevents_producer'), ('claim_ready_steps', 'stepevents_producer'),
            ('next_claimable_step', 'stepevents_producer'),
            ('stale_steps', 'stepevents_producer'), ('abort_transaction', 'stepevents_producer'),
            ('dead_letter', 'stepevents_consumer')
        ) AS g(name, role) ON g.name = p.proname
        WHERE p.pronamespace = 'stepevents'::regnamespace
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f.fn, f.role);
    END LOOP;
END
$$;

-- 8. Queues: the producer group may publish to every namespace that has
-- queues. Consumers are granted per namespace with stepevents.grant_consumer.
-- pgmq's functions are SECURITY INVOKER and executable by PUBLIC, so these
-- table privileges are what decides who may send, read, delete or archive.
GRANT USAGE ON SCHEMA pgmq TO stepevents_producer, stepevents_consumer;
DO $$
BEGIN
    PERFORM stepevents.grant_producer('stepevents_producer', n.namespace)
    FROM (SELECT DISTINCT namespace FROM stepevents.task_templates) n
    WHERE to_regclass(format('pgmq.%I', 'q_' || n.namespace || '_domain_events')) IS NOT NULL
      AND to_regclass(format('pgmq.%I', 'q_' || n.namespace || '_domain_events_dlq')) IS NOT NULL;
END
$$;

-- 9. pg_monitor. pgmq (the extension and stepevents' compatible schema alike)
-- grants pg_monitor SELECT on every queue and archive table, payloads
-- included, now and for tables created later. Monitoring exporters often run
-- as pg_monitor members. To keep payloads private, run as the role that
-- installed pgmq (the FOR ROLE of the default privileges):
--
--   REVOKE SELECT ON ALL TABLES IN SCHEMA pgmq FROM pg_monitor;
--   ALTER DEFAULT PRIVILEGES IN SCHEMA pgmq REVOKE SELECT ON TABLES FROM pg_monitor;
--   GRANT SELECT ON pgmq.meta TO pg_monitor;  -- queue names stay visible; pgmq.metrics
--                                             -- then needs a per-queue grant
--
-- Not done here: pgmq belongs to whoever installed it, and other users of the
-- database may rely on those grants.
