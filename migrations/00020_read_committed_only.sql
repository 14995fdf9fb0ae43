-- Step operations refuse transactions that are not READ COMMITTED.
--
-- Every state change re-derives its task's state in refresh_task_state:
-- it locks the task row, then aggregates the task's steps in a fresh
-- statement, which under READ COMMITTED sees siblings committed while it
-- waited. Under REPEATABLE READ or SERIALIZABLE that statement reads the
-- transaction's snapshot instead: a sibling completed and committed after
-- the snapshot still looks in_progress, and since a sibling's transition
-- that leaves the task state alone never writes the task row, locking it
-- raises no serialization error. The task then stays in_progress with every
-- step complete, for good (or is marked error after a sibling was reset).
-- Such a transaction now gets SE005 (ErrInvalidInput) saying so, and
-- nothing commits. CompleteStep and FailStep begin their own transactions
-- READ COMMITTED explicitly, so a server whose default is stricter still
-- works through them.

-- +goose Up

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.refresh_task_state(p_task_uuid uuid)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
BEGIN
    -- Under REPEATABLE READ or SERIALIZABLE the aggregate below would read
    -- the transaction's snapshot, blind to siblings committed since: a task
    -- could stay in_progress with every step complete. Refuse instead.
    IF current_setting('transaction_isolation') NOT IN ('read committed', 'read uncommitted') THEN
        RAISE EXCEPTION 'stepevents step operations need READ COMMITTED isolation; this transaction is %',
            upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'SE005',
                  HINT = 'begin it with ISOLATION LEVEL READ COMMITTED, or set default_transaction_isolation to read committed for the connections stepevents uses';
    END IF;
    -- Lock the task first, then aggregate in a fresh statement: under READ
    -- COMMITTED this sees sibling steps committed while we waited for the lock.
    PERFORM 1 FROM stepevents.tasks WHERE task_uuid = p_task_uuid FOR UPDATE;

    SELECT CASE
        WHEN bool_and(state IN ('complete', 'resolved_manually')) THEN 'complete'
        WHEN bool_or(state = 'error') THEN 'error'
        WHEN bool_and(state IN ('complete', 'resolved_manually', 'cancelled')) THEN 'cancelled'
        WHEN bool_or(state <> 'pending') THEN 'in_progress'
        ELSE 'pending'
    END INTO v_state
    FROM stepevents.workflow_steps WHERE task_uuid = p_task_uuid;

    UPDATE stepevents.tasks
    SET state = v_state,
        updated_at = now(),
        completed_at = CASE WHEN v_state = 'complete' THEN now() END
    WHERE task_uuid = p_task_uuid AND state IS DISTINCT FROM v_state;
    RETURN v_state;
END
$$;
-- +goose StatementEnd

-- +goose Down

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION stepevents.refresh_task_state(p_task_uuid uuid)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
BEGIN
    -- Lock the task first, then aggregate in a fresh statement: under READ
    -- COMMITTED this sees sibling steps committed while we waited for the lock.
    PERFORM 1 FROM stepevents.tasks WHERE task_uuid = p_task_uuid FOR UPDATE;

    SELECT CASE
        WHEN bool_and(state IN ('complete', 'resolved_manually')) THEN 'complete'
        WHEN bool_or(state = 'error') THEN 'error'
        WHEN bool_and(state IN ('complete', 'resolved_manually', 'cancelled')) THEN 'cancelled'
        WHEN bool_or(state <> 'pending') THEN 'in_progress'
        ELSE 'pending'
    END INTO v_state
    FROM stepevents.workflow_steps WHERE task_uuid = p_task_uuid;

    UPDATE stepevents.tasks
    SET state = v_state,
        updated_at = now(),
        completed_at = CASE WHEN v_state = 'complete' THEN now() END
    WHERE task_uuid = p_task_uuid AND state IS DISTINCT FROM v_state;
    RETURN v_state;
END
$$;
-- +goose StatementEnd
