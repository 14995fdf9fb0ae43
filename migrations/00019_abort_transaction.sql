-- stepevents.abort_transaction(reason): leave the caller's transaction
-- aborted.
--
-- CompleteStepTx and FailStepTx record the step in the caller's pgx.Tx
-- first and build and send its events after. When that later part fails in
-- Go (a publisher error, an invalid emitted event), the transaction was
-- still healthy: a caller who went on and committed it committed a step
-- without the events it declares. The Go side now calls this function on
-- any such error, so the transaction can only roll back (or roll back to a
-- savepoint the caller made before the recording).

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION stepevents.abort_transaction(p_reason text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stepevents aborted this transaction: %', p_reason
        USING ERRCODE = 'SE007',
              HINT = 'a step was recorded in it but its events could not be built or sent; roll it back';
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'stepevents_producer') THEN
        GRANT EXECUTE ON FUNCTION stepevents.abort_transaction(text) TO stepevents_producer;
    END IF;
    -- Where roles.sql took EXECUTE away from PUBLIC in this database, keep
    -- it that way for the new function (see 00016).
    IF NOT has_function_privilege('public', 'stepevents.claim_ready_steps(integer, text[])', 'EXECUTE') THEN
        REVOKE ALL ON FUNCTION stepevents.abort_transaction(text) FROM PUBLIC;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stepevents.abort_transaction(text);
