package events_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Applying a template sets lz4 on its queue's message column, so durable
// events are stored lz4-compressed (pglz cost a quarter of every send).
func TestQueueMessagesAreLZ4(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	skipWithoutLZ4(t, b)
	_, steps := b.newTask(t)
	b.complete(t, steps[stepValidate], validResult)
	b.complete(t, steps[stepPayment], `{"transaction_id":"txn-9","amount":42.5}`)
	var compression *string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT pg_column_compression(message)
		FROM pgmq.q_domain_events_domain_events ORDER BY msg_id LIMIT 1`).Scan(&compression))
	require.NotNil(t, compression, "a durable event of this fixture is over the TOAST threshold")
	require.Equal(t, "lz4", *compression)

	// Idempotent, and false without changing anything for a missing queue.
	var ok bool
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT stepevents.compress_queue_messages('domain_events_domain_events')`).Scan(&ok))
	require.True(t, ok)
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT stepevents.compress_queue_messages('nope')`).Scan(&ok))
	require.False(t, ok)
}

// A busy queue table is left as it is rather than stalling its producers:
// the lock wait is bounded, and the caller's lock_timeout is restored.
func TestQueueCompressionGivesUpOnABusyTable(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, err := b.pool.Exec(b.ctx, `SELECT pgmq.create('busy_domain_events')`)
	require.NoError(t, err)
	holder, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(b.ctx) }()
	_, err = holder.Exec(b.ctx, `SELECT count(*) FROM pgmq.q_busy_domain_events`)
	require.NoError(t, err)

	conn, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	defer conn.Release()
	tx, err := conn.Begin(b.ctx)
	require.NoError(t, err)
	var ok bool
	var timeout string
	require.NoError(t, tx.QueryRow(b.ctx, `SELECT stepevents.compress_queue_messages('busy_domain_events')`).Scan(&ok))
	require.False(t, ok, "the table was busy")
	require.NoError(t, tx.QueryRow(b.ctx, `SHOW lock_timeout`).Scan(&timeout))
	require.Equal(t, "0", timeout)
	require.NoError(t, tx.Commit(b.ctx))

	require.NoError(t, holder.Rollback(b.ctx))
	require.NoError(t, conn.QueryRow(b.ctx, `SELECT stepevents.compress_queue_messages('busy_domain_events')`).Scan(&ok))
	require.True(t, ok)
}

// A template applied from SQL alone, without the Go client, gets lz4 too:
// apply_template sets it where it creates the queue.
func TestApplyTemplateInSQLSetsLZ4(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	skipWithoutLZ4(t, b)
	_, err := b.pool.Exec(b.ctx, `SELECT stepevents.apply_template('sqlonly', 'plain', '1.0.0', '', NULL,
		'{"name": "plain"}', '[{"name": "only", "position": 0, "handler": "h", "retryable": true, "max_attempts": 3,
		  "backoff": "exponential", "backoff_base_ms": 1000, "max_backoff_ms": 30000}]', '[]')`)
	require.NoError(t, err)
	var compression string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT attcompression::text FROM pg_attribute
		WHERE attrelid = 'pgmq.q_sqlonly_domain_events'::regclass AND attname = 'message'`).Scan(&compression))
	require.Equal(t, "l", compression)
}

// skipWithoutLZ4 skips a test on a server built without lz4.
func skipWithoutLZ4(t *testing.T, b *bundle) {
	t.Helper()
	var lz4 bool
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT 'lz4' = ANY (enumvals) FROM pg_settings
		WHERE name = 'default_toast_compression'`).Scan(&lz4))
	if !lz4 {
		t.Skip("this PostgreSQL was built without lz4")
	}
}
