package pgmqcontract_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// call is one pgmq invocation with every parameter cast; $1 is the queue name.
type call struct {
	name string
	sql  string
	args []any
}

func queueCalls() []call {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	return []call{
		{"send/2", "SELECT pgmq.send($1::text, $2::jsonb)", []any{`{}`}},
		{"send/3 headers", "SELECT pgmq.send($1::text, $2::jsonb, $3::jsonb)", []any{`{}`, `{}`}},
		{"send/3 int", "SELECT pgmq.send($1::text, $2::jsonb, $3::int)", []any{`{}`, 1}},
		{"send/3 ts", "SELECT pgmq.send($1::text, $2::jsonb, $3::timestamptz)", []any{`{}`, at}},
		{"send/4 int", "SELECT pgmq.send($1::text, $2::jsonb, $3::jsonb, $4::int)", []any{`{}`, `{}`, 1}},
		{"send/4 ts", "SELECT pgmq.send($1::text, $2::jsonb, $3::jsonb, $4::timestamptz)", []any{`{}`, `{}`, at}},
		{"send_batch/2", "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[])", []any{[]string{`{}`}}},
		{"send_batch/3 headers", "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::jsonb[])", []any{[]string{`{}`}, []string{`{}`}}},
		{"send_batch/3 int", "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::int)", []any{[]string{`{}`}, 1}},
		{"send_batch/3 ts", "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::timestamptz)", []any{[]string{`{}`}, at}},
		{"send_batch/4 int", "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::jsonb[], $4::int)", []any{[]string{`{}`}, []string{`{}`}, 1}},
		{"send_batch/4 ts", "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::jsonb[], $4::timestamptz)", []any{[]string{`{}`}, []string{`{}`}, at}},
		{"read", "SELECT * FROM pgmq.read($1::text, $2::int, $3::int)", []any{30, 1}},
		{"read conditional", "SELECT * FROM pgmq.read($1::text, $2::int, $3::int, $4::jsonb)", []any{30, 1, `{"a":1}`}},
		{"read_with_poll", "SELECT * FROM pgmq.read_with_poll($1::text, $2::int, $3::int, $4::int, $5::int)", []any{30, 1, 1, 10}},
		{"pop", "SELECT * FROM pgmq.pop($1::text)", nil},
		{"pop qty", "SELECT * FROM pgmq.pop($1::text, $2::int)", []any{2}},
		{"delete", "SELECT pgmq.delete($1::text, $2::bigint)", []any{int64(1)}},
		{"delete array", "SELECT * FROM pgmq.delete($1::text, $2::bigint[])", []any{[]int64{1}}},
		{"archive", "SELECT pgmq.archive($1::text, $2::bigint)", []any{int64(1)}},
		{"archive array", "SELECT * FROM pgmq.archive($1::text, $2::bigint[])", []any{[]int64{1}}},
		{"set_vt int", "SELECT * FROM pgmq.set_vt($1::text, $2::bigint, $3::int)", []any{int64(1), 1}},
		{"set_vt ts", "SELECT * FROM pgmq.set_vt($1::text, $2::bigint, $3::timestamptz)", []any{int64(1), at}},
		{"set_vt array int", "SELECT * FROM pgmq.set_vt($1::text, $2::bigint[], $3::int)", []any{[]int64{1}, 1}},
		{"set_vt array ts", "SELECT * FROM pgmq.set_vt($1::text, $2::bigint[], $3::timestamptz)", []any{[]int64{1}, at}},
		{"purge_queue", "SELECT pgmq.purge_queue($1::text)", nil},
		{"metrics", "SELECT * FROM pgmq.metrics($1::text)", nil},
	}
}

func (c call) exec(t *testing.T, db querier, queue string) error {
	t.Helper()
	_, err := db.Exec(t.Context(), c.sql, append([]any{queue}, c.args...)...)
	return err
}

func TestMissingQueueIsUndefinedTable(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	createQueue(t, db, "present")

	// The message names the lower-cased table (§7).
	for _, c := range queueCalls() {
		t.Run(c.name, func(t *testing.T) {
			err := c.exec(t, db, "Missing_Q")
			requirePgError(t, err, "42P01", `relation "pgmq.q_missing_q" does not exist`)
		})
	}

	// send/read do not check the length: an over-long name is just missing.
	long := strings.Repeat("n", 48)
	requirePgError(t, queueCalls()[0].exec(t, db, long), "42P01", `relation "pgmq.q_`+long+`" does not exist`)

	// Sanity: the same calls work on an existing queue.
	for _, c := range queueCalls() {
		require.NoError(t, c.exec(t, db, "present"), c.name)
	}
}

const invalidCharsMsg = `queue name contains invalid characters: $, ;, --, or \'`

func TestQueueNameInvalidCharacters(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()

	for _, name := range []string{"a$b", "a;b", "a--b", "it's", "x; DROP TABLE pgmq.meta"} {
		for _, fn := range []string{"create", "create_non_partitioned", "create_unlogged"} {
			_, err := db.Exec(ctx, "SELECT pgmq."+fn+"($1::text)", name)
			requirePgError(t, err, "P0001", invalidCharsMsg)
		}
	}
	// Every function checks the characters, before touching any table.
	calls := append(queueCalls(),
		call{"drop_queue", "SELECT pgmq.drop_queue($1::text)", nil},
	)
	for _, c := range calls {
		requirePgError(t, c.exec(t, db, "bad;name"), "P0001", invalidCharsMsg)
	}
	// The character check runs before the length check.
	_, err := db.Exec(ctx, "SELECT pgmq.create($1::text)", strings.Repeat("x", 60)+"$")
	requirePgError(t, err, "P0001", invalidCharsMsg)

	// Nothing was created.
	var n int
	require.NoError(t, db.QueryRow(ctx, "SELECT count(*) FROM pgmq.meta").Scan(&n))
	require.Zero(t, n)
}

func TestQueueNameTooLong(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()

	tooLong := strings.Repeat("a", 48)
	for _, fn := range []string{"create", "create_non_partitioned", "create_unlogged"} {
		_, err := db.Exec(ctx, "SELECT pgmq."+fn+"($1::text)", tooLong)
		requirePgError(t, err, "P0001", "queue name is too long, maximum length is 47 characters")
	}

	maxLen := strings.Repeat("b", 47)
	createQueue(t, db, maxLen)
	id := send(t, db, maxLen, `{}`)
	require.Equal(t, []int64{id}, ids(read(t, db, maxLen, 30, 1)))
	var vtIdx *string
	require.NoError(t, db.QueryRow(ctx, "SELECT to_regclass($1::text)::text", "pgmq.q_"+maxLen+"_vt_idx").Scan(&vtIdx))
	require.NotNil(t, vtIdx)
	require.EqualValues(t, 1, metrics(t, db, maxLen).TotalMessages)
}

func TestUncastOverloadsAreAmbiguous(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "t1")

	// Literal form from the docs (simple protocol, no parameters).
	_, err := db.Exec(ctx, `SELECT pgmq.send('t1', '{"a":1}', '{"h":1}')`)
	requirePgError(t, err, "42725", "function pgmq.send(unknown, unknown, unknown) is not unique")

	// Untyped bind parameters fail the same way (at prepare time).
	_, err = db.Exec(ctx, "SELECT pgmq.send($1, $2, $3)", "t1", `{"a":1}`, `{"h":1}`)
	requirePgError(t, err, "42725", "function pgmq.send(unknown, unknown, unknown) is not unique")
	_, err = db.Exec(ctx, "SELECT * FROM pgmq.send_batch($1, $2, $3)", "t1", `{"{}"}`, `{"{}"}`)
	requirePgError(t, err, "42725", "function pgmq.send_batch(unknown, unknown, unknown) is not unique")
	_, err = db.Exec(ctx, "SELECT pgmq.delete($1, $2)", "t1", "1")
	requirePgError(t, err, "42725", "function pgmq.delete(unknown, unknown) is not unique")
	_, err = db.Exec(ctx, "SELECT pgmq.archive($1, $2)", "t1", "1")
	requirePgError(t, err, "42725", "function pgmq.archive(unknown, unknown) is not unique")
	_, err = db.Exec(ctx, "SELECT * FROM pgmq.set_vt($1, $2, $3)", "t1", "1", "1")
	requirePgError(t, err, "42725", "function pgmq.set_vt(unknown, unknown, unknown) is not unique")

	require.Empty(t, queueRows(t, db, "t1"), "nothing was sent")

	// What does resolve: integer literals, typed expressions, named arguments.
	_, err = db.Exec(ctx, `SELECT pgmq.send('t1', '{"a":1}', 0)`)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `SELECT pgmq.send('t1', '{"a":2}', now() - interval '1 second')`)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `SELECT pgmq.send(queue_name => 't1', msg => '{"a":3}', headers => '{"h":1}')`)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `SELECT pgmq.send('t1', '{"a":4}')`)
	require.NoError(t, err, "2-argument send has a single candidate")
	rows := queueRows(t, db, "t1")
	require.Len(t, rows, 4)
	require.JSONEq(t, `{"h":1}`, string(rows[2].Headers))
}
