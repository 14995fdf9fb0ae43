package events_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/examples/publishers"
)

// A publisher error in the caller's transaction leaves it aborted: the
// caller cannot commit the step without its declared event, even when it
// ignores the error (the promise TestCustomPublisherErrorFailsCompletion
// checks for CompleteStep's own transaction).
func TestTxRecordingErrorAbortsTransaction(t *testing.T) {
	t.Parallel()
	b, payment := paymentWithFailingPublishers(t)

	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	_, err = b.client.CompleteStepTx(b.ctx, tx, payment, json.RawMessage(`{}`))
	require.ErrorIs(t, err, events.ErrPublisher)
	require.ErrorIs(t, tx.Commit(b.ctx), pgx.ErrTxCommitRollback, "the transaction cannot commit")

	st, err := events.GetStep(b.ctx, b.pool, payment)
	require.NoError(t, err)
	require.Equal(t, "in_progress", st.State, "nothing committed")
	require.Empty(t, b.queueRows(t))

	// InTx whose fn swallows the error commits nothing either.
	err = b.client.InTx(b.ctx, func(ctx context.Context, tx pgx.Tx) error {
		_, err := b.client.CompleteStepTx(ctx, tx, payment, json.RawMessage(`{}`))
		require.ErrorIs(t, err, events.ErrPublisher)
		return nil
	})
	require.ErrorIs(t, err, pgx.ErrTxCommitRollback)
	st, err = events.GetStep(b.ctx, b.pool, payment)
	require.NoError(t, err)
	require.Equal(t, "in_progress", st.State, "nothing committed")
}

// A caller that made a savepoint before the recording rolls back to it and
// goes on: its own work commits, the step stays as it was.
func TestTxRecordingErrorRollsBackToSavepoint(t *testing.T) {
	t.Parallel()
	b, payment := paymentWithFailingPublishers(t)
	tx := b.auditTx(t, "before")
	sp, err := tx.Begin(b.ctx)
	require.NoError(t, err)
	_, err = b.client.CompleteStepTx(b.ctx, sp, payment, json.RawMessage(`{}`))
	require.ErrorIs(t, err, events.ErrPublisher)
	require.NoError(t, sp.Rollback(b.ctx))
	_, err = tx.Exec(b.ctx, `INSERT INTO public.audit VALUES ('after')`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(b.ctx))

	var notes int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM public.audit`).Scan(&notes))
	require.Equal(t, 2, notes)
	st, err := events.GetStep(b.ctx, b.pool, payment)
	require.NoError(t, err)
	require.Equal(t, "in_progress", st.State)
	require.Empty(t, b.queueRows(t))
}

// An error before anything was recorded (here: ctx already cancelled, so
// no statement is sent; or input refused in Go) leaves the caller's
// transaction usable: its own work still commits.
func TestTxErrorBeforeRecordingLeavesTransactionUsable(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, steps := b.newTask(t)
	b.start(t, steps[stepValidate])
	tx := b.auditTx(t, "mine")
	cancelled, cancel := context.WithCancel(b.ctx)
	cancel()
	_, err := b.client.CompleteStepTx(cancelled, tx, steps[stepValidate], json.RawMessage(validResult))
	require.ErrorIs(t, err, context.Canceled)
	_, err = b.client.CompleteStepTx(b.ctx, tx, steps[stepValidate], json.RawMessage(`{not json`))
	require.ErrorIs(t, err, events.ErrInvalidInput)
	require.NoError(t, tx.Commit(b.ctx))

	var notes int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM public.audit`).Scan(&notes))
	require.Equal(t, 1, notes)
	st, err := events.GetStep(b.ctx, b.pool, steps[stepValidate])
	require.NoError(t, err)
	require.Equal(t, "in_progress", st.State, "nothing recorded")
}

// Under REPEATABLE READ the task state would be derived from a stale
// snapshot: a step completed by another transaction after the snapshot
// still looked in_progress, and the task stayed in_progress with every step
// complete. Step operations now refuse such a transaction and change nothing.
func TestRepeatableReadRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	steps := b.taskOf(t, "two.yaml", `
name: two
namespace_name: iso
version: 1.0.0
steps:
  - name: a
    handler: {callable: iso.a}
  - name: b
    handler: {callable: iso.b}
`, "iso", "two")
	for _, s := range steps {
		b.start(t, s.StepUUID)
	}

	for _, level := range []pgx.TxIsoLevel{pgx.RepeatableRead, pgx.Serializable} {
		tx, err := b.pool.BeginTx(b.ctx, pgx.TxOptions{IsoLevel: level})
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
		_, err = tx.Exec(b.ctx, `SELECT 1`) // takes the snapshot
		require.NoError(t, err)
		if level == pgx.RepeatableRead {
			// Another transaction completes b after that snapshot.
			_, err = b.client.CompleteStep(b.ctx, steps[1].StepUUID, json.RawMessage(`{}`))
			require.NoError(t, err)
		}
		_, err = b.client.CompleteStepTx(b.ctx, tx, steps[0].StepUUID, json.RawMessage(`{}`))
		require.ErrorIs(t, err, events.ErrInvalidInput, "level %s", level)
		require.ErrorContains(t, err, "need READ COMMITTED isolation")
		require.Error(t, tx.Commit(b.ctx))
	}
	st, err := events.GetStep(b.ctx, b.pool, steps[0].StepUUID)
	require.NoError(t, err)
	require.Equal(t, "in_progress", st.State, "nothing committed")

	// READ COMMITTED, as CompleteStep uses, records it and the task completes.
	_, err = b.client.CompleteStep(b.ctx, steps[0].StepUUID, json.RawMessage(`{}`))
	require.NoError(t, err)
	var state string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT state FROM stepevents.tasks WHERE task_uuid = $1`,
		steps[0].TaskUUID).Scan(&state))
	require.Equal(t, "complete", state)
}

// On a server whose default isolation is stricter, CompleteStep and InTx
// still work: they begin their transactions READ COMMITTED.
func TestOwnTransactionsAreReadCommitted(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, steps := b.newTask(t)
	b.start(t, steps[stepValidate])
	cfg := b.pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "repeatable read"
	strict, err := pgxpool.NewWithConfig(b.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(strict.Close)
	client, err := events.NewClient(b.ctx, strict, &events.Config{Publishers: publishers.All()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close(context.Background())) })

	var level string
	err = client.InTx(b.ctx, func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT current_setting('transaction_isolation')`).Scan(&level)
	})
	require.NoError(t, err)
	require.Equal(t, "read committed", level)
	_, err = client.CompleteStep(b.ctx, steps[stepValidate], json.RawMessage(validResult))
	require.NoError(t, err)
	st, err := events.GetStep(b.ctx, b.pool, steps[stepValidate])
	require.NoError(t, err)
	require.Equal(t, "complete", st.State)
}

// paymentWithFailingPublishers gives a bundle whose custom publishers all
// fail, with a task's payment step in progress (its parent complete).
func paymentWithFailingPublishers(t *testing.T) (*bundle, uuid.UUID) {
	t.Helper()
	pubs := []events.Publisher{failingPublisher{"PaymentEventPublisher"}, failingPublisher{"NotificationEventPublisher"}}
	b := setup(t, &events.Config{Publishers: pubs})
	_, steps := b.newTask(t)
	b.complete(t, steps[stepValidate], validResult)
	b.start(t, steps[stepPayment])
	return b, steps[stepPayment]
}

// auditTx creates the caller's own table public.audit and returns a
// transaction that wrote note to it: the caller's work a recording must
// not lose. It is rolled back at the end of the test if still open.
func (b *bundle) auditTx(t *testing.T, note string) pgx.Tx {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, `CREATE TABLE public.audit (note text)`)
	require.NoError(t, err)
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	_, err = tx.Exec(b.ctx, `INSERT INTO public.audit VALUES ($1)`, note)
	require.NoError(t, err)
	return tx
}
