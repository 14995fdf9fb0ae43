// Package pgmqcontract_test is the pgmq contract suite
// (docs: /work/shared/reference/pgmq-api.md §13). It must pass unchanged on the
// real pgmq extension (1.11–1.13) and on stepevents' compatible schema, so it
// uses only pgmq's public SQL surface, plain SELECTs on pgmq.q_/a_/meta, and
// catalog queries. Every bind parameter is cast (§8) and message_record rows
// are decoded by column name.
package pgmqcontract_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()

	createQueue(t, db, "orders")
	id := send(t, db, "orders", `{"a":1}`)
	createQueue(t, db, "orders") // second create: no error, data kept

	rows := queueRows(t, db, "orders")
	require.Equal(t, []int64{id}, ids(rows))

	var metaRows int
	require.NoError(t, db.QueryRow(ctx,
		"SELECT count(*) FROM pgmq.meta WHERE queue_name = 'orders'").Scan(&metaRows))
	require.Equal(t, 1, metaRows)

	var isPartitioned, isUnlogged bool
	var createdAt time.Time
	require.NoError(t, db.QueryRow(ctx,
		"SELECT is_partitioned, is_unlogged, created_at FROM pgmq.meta WHERE queue_name = 'orders'").
		Scan(&isPartitioned, &isUnlogged, &createdAt))
	require.False(t, isPartitioned)
	require.False(t, isUnlogged)
	require.False(t, createdAt.IsZero())

	// create_non_partitioned is what create() calls; also idempotent.
	_, err := db.Exec(ctx, "SELECT pgmq.create_non_partitioned($1::text)", "orders")
	require.NoError(t, err)
	_, err = db.Exec(ctx, "SELECT pgmq.create_non_partitioned($1::text)", "invoices")
	require.NoError(t, err)
	require.Equal(t, []int64{send(t, db, "invoices", `{}`)}, ids(queueRows(t, db, "invoices")))
}

func TestConcurrentCreateAndDrop(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()

	// create/drop of one name are serialised (advisory lock), so racing
	// idempotent creates all succeed.
	const n = 4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.Exec(ctx, "SELECT pgmq.create($1::text)", "race")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var metaRows int
	require.NoError(t, db.QueryRow(ctx, "SELECT count(*) FROM pgmq.meta WHERE queue_name = 'race'").Scan(&metaRows))
	require.Equal(t, 1, metaRows)

	// Exactly one of two racing drops reports true.
	results := make(chan bool, 2)
	errs = make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ok bool
			errs <- db.QueryRow(ctx, "SELECT pgmq.drop_queue($1::text)", "race").Scan(&ok)
			results <- ok
		}()
	}
	wg.Wait()
	close(errs)
	close(results)
	for err := range errs {
		require.NoError(t, err)
	}
	var trues int
	for ok := range results {
		if ok {
			trues++
		}
	}
	require.Equal(t, 1, trues)
}

func TestCreateUnlogged(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()

	_, err := db.Exec(ctx, "SELECT pgmq.create_unlogged($1::text)", "fast")
	require.NoError(t, err)

	var isUnlogged bool
	require.NoError(t, db.QueryRow(ctx,
		"SELECT is_unlogged FROM pgmq.meta WHERE queue_name = 'fast'").Scan(&isUnlogged))
	require.True(t, isUnlogged)

	var qPersistence, aPersistence string
	require.NoError(t, db.QueryRow(ctx, `
		SELECT (SELECT relpersistence::text FROM pg_class WHERE oid = 'pgmq.q_fast'::regclass),
		       (SELECT relpersistence::text FROM pg_class WHERE oid = 'pgmq.a_fast'::regclass)`).
		Scan(&qPersistence, &aPersistence))
	require.Equal(t, "u", qPersistence, "queue table is UNLOGGED")
	require.Equal(t, "p", aPersistence, "archive stays logged")

	id := send(t, db, "fast", `{"x":1}`)
	got := read(t, db, "fast", 30, 10)
	require.Equal(t, []int64{id}, ids(got))
}

func TestSendForms(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "q")

	before := serverNow(t, db)

	// send(queue_name, msg)
	id1 := send(t, db, "q", `{"k":"plain"}`)

	// send(queue_name, msg, headers)
	var id2 int64
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.send($1::text, $2::jsonb, $3::jsonb)",
		"q", `{"k":"headers"}`, `{"h":1}`).Scan(&id2))

	// send(queue_name, msg) with a NULL message
	var id3 int64
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.send($1::text, $2::jsonb)", "q", nil).Scan(&id3))

	// send(queue_name, msg, delay integer)
	var id4 int64
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.send($1::text, $2::jsonb, $3::int)",
		"q", `{"k":"delay-int"}`, 3600).Scan(&id4))

	// send(queue_name, msg, delay timestamptz): vt is exactly the given time.
	at := before.Add(2 * time.Hour).Truncate(time.Microsecond)
	var id5 int64
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.send($1::text, $2::jsonb, $3::timestamptz)",
		"q", `{"k":"delay-ts"}`, at).Scan(&id5))

	// send(queue_name, msg, headers, delay integer)
	var id6 int64
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.send($1::text, $2::jsonb, $3::jsonb, $4::int)",
		"q", `{"k":"headers-delay-int"}`, `{"h":6}`, 3600).Scan(&id6))

	// send(queue_name, msg, headers, delay timestamptz), in the past: visible now.
	past := before.Add(-time.Hour).Truncate(time.Microsecond)
	var id7 int64
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.send($1::text, $2::jsonb, $3::jsonb, $4::timestamptz)",
		"q", `{"k":"headers-delay-ts"}`, `{"h":7}`, past).Scan(&id7))

	// Named arguments disambiguate too (§8).
	var id8 int64
	require.NoError(t, db.QueryRow(ctx,
		"SELECT pgmq.send(queue_name => $1::text, msg => $2::jsonb, delay => $3::int)",
		"q", `{"k":"named"}`, 0).Scan(&id8))

	// Each send returns exactly one id, increasing.
	var n int
	require.NoError(t, db.QueryRow(ctx, "SELECT count(*) FROM pgmq.send($1::text, $2::jsonb)", "q", `{}`).Scan(&n))
	require.Equal(t, 1, n)
	all := []int64{id1, id2, id3, id4, id5, id6, id7, id8}
	for i := 1; i < len(all); i++ {
		require.Greater(t, all[i], all[i-1])
	}

	after := serverNow(t, db)
	rows := queueRows(t, db, "q")
	require.Len(t, rows, 9)
	byID := map[int64]message{}
	for _, r := range rows {
		byID[r.MsgID] = r
		require.Zero(t, r.ReadCt)
		require.Nil(t, r.LastReadAt)
		require.False(t, r.EnqueuedAt.IsZero())
	}

	require.JSONEq(t, `{"k":"plain"}`, string(byID[id1].Message))
	require.Nil(t, byID[id1].Headers)
	require.WithinRange(t, byID[id1].VT, before, after)

	require.JSONEq(t, `{"h":1}`, string(byID[id2].Headers))
	require.Nil(t, byID[id3].Message, "msg may be NULL")

	require.WithinRange(t, byID[id4].VT, before.Add(3600*time.Second), after.Add(3600*time.Second))
	require.Nil(t, byID[id4].Headers)

	require.True(t, at.Equal(byID[id5].VT), "vt %v want %v", byID[id5].VT, at)

	require.JSONEq(t, `{"h":6}`, string(byID[id6].Headers))
	require.WithinRange(t, byID[id6].VT, before.Add(3600*time.Second), after.Add(3600*time.Second))

	require.True(t, past.Equal(byID[id7].VT))
	require.JSONEq(t, `{"h":7}`, string(byID[id7].Headers))

	// Only the undelayed messages are visible.
	got := read(t, db, "q", 30, 100)
	require.ElementsMatch(t, []int64{id1, id2, id3, id7, id8, all[len(all)-1] + 1}, ids(got))
}

func TestSendBatch(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "b")

	before := serverNow(t, db)

	msgs := []string{`{"i":1}`, `{"i":2}`, `{"i":3}`}
	plain := queryIDs(t, db, "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[])", "b", msgs)
	require.Len(t, plain, 3)

	withHeaders := queryIDs(t, db, "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::jsonb[])",
		"b", []string{`{"i":4}`, `{"i":5}`}, []any{`{"h":4}`, nil})
	require.Len(t, withHeaders, 2)

	delayInt := queryIDs(t, db, "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::int)",
		"b", []string{`{"i":6}`}, 3600)
	at := before.Add(time.Hour).Truncate(time.Microsecond)
	delayTS := queryIDs(t, db, "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::timestamptz)",
		"b", []string{`{"i":7}`}, at)
	hdrDelayInt := queryIDs(t, db, "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::jsonb[], $4::int)",
		"b", []string{`{"i":8}`}, []string{`{"h":8}`}, 3600)
	hdrDelayTS := queryIDs(t, db, "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::jsonb[], $4::timestamptz)",
		"b", []string{`{"i":9}`}, []string{`{"h":9}`}, at)
	after := serverNow(t, db)

	rows := queueRows(t, db, "b")
	require.Len(t, rows, 9)
	for i, r := range rows {
		// ids follow input order: message i+1 has the i-th id.
		require.JSONEq(t, fmt.Sprintf(`{"i":%d}`, i+1), string(r.Message))
	}
	require.Equal(t, plain, ids(rows[0:3]))
	require.Equal(t, withHeaders, ids(rows[3:5]))
	require.Equal(t, delayInt, ids(rows[5:6]))
	require.Equal(t, delayTS, ids(rows[6:7]))
	require.Equal(t, hdrDelayInt, ids(rows[7:8]))
	require.Equal(t, hdrDelayTS, ids(rows[8:9]))

	require.Nil(t, rows[0].Headers)
	require.JSONEq(t, `{"h":4}`, string(rows[3].Headers))
	require.Nil(t, rows[4].Headers)
	require.WithinRange(t, rows[0].VT, before, after)
	require.WithinRange(t, rows[5].VT, before.Add(time.Hour), after.Add(time.Hour))
	require.True(t, at.Equal(rows[6].VT))
	require.JSONEq(t, `{"h":8}`, string(rows[7].Headers))
	require.WithinRange(t, rows[7].VT, before.Add(time.Hour), after.Add(time.Hour))
	require.JSONEq(t, `{"h":9}`, string(rows[8].Headers))
	require.True(t, at.Equal(rows[8].VT))

	// Validation (§7).
	_, err := db.Exec(ctx, "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[])", "b", nil)
	requirePgError(t, err, "P0001", "msgs cannot be NULL or empty")
	_, err = db.Exec(ctx, "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[])", "b", []string{})
	requirePgError(t, err, "P0001", "msgs cannot be NULL or empty")
	_, err = db.Exec(ctx, "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::jsonb[])",
		"b", []string{`{"i":1}`, `{"i":2}`}, []string{`{"h":1}`})
	requirePgError(t, err, "P0001", "headers array length (1) must match msgs array length (2)")
	_, err = db.Exec(ctx, "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[], $3::jsonb[], $4::int)",
		"b", []string{`{"i":1}`}, []string{`{"h":1}`, `{"h":2}`, `{"h":3}`}, 0)
	requirePgError(t, err, "P0001", "headers array length (3) must match msgs array length (1)")
	require.Len(t, queueRows(t, db, "b"), 9, "failed batches insert nothing")
}

func TestReadVisibilityTimeoutAndReadCount(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	createQueue(t, db, "r")
	id := send(t, db, "r", `{"a":1}`)

	before := serverNow(t, db)
	got := read(t, db, "r", 1, 1)
	after := serverNow(t, db)
	require.Len(t, got, 1)
	m := got[0]
	require.Equal(t, id, m.MsgID)
	require.EqualValues(t, 1, m.ReadCt)
	require.NotNil(t, m.LastReadAt)
	require.WithinRange(t, *m.LastReadAt, before, after)
	require.WithinRange(t, m.VT, before.Add(time.Second), after.Add(time.Second))
	require.JSONEq(t, `{"a":1}`, string(m.Message))

	// Hidden until vt passes (vt = 1 second).
	require.Empty(t, read(t, db, "r", 1, 1))
	var again []message
	waitUntil(t, 10*time.Second, "message to become visible again", func() bool {
		again = read(t, db, "r", 30, 1)
		return len(again) == 1
	})
	require.False(t, serverNow(t, db).Before(m.VT), "redelivered only after vt")
	require.EqualValues(t, 2, again[0].ReadCt)
	require.True(t, again[0].LastReadAt.After(*m.LastReadAt))

	// vt = 0 makes it visible again at once, still counted as a read.
	id2 := send(t, db, "r", `{"a":2}`)
	first := read(t, db, "r", 0, 1)
	require.Equal(t, []int64{id2}, ids(first))
	second := read(t, db, "r", 0, 1)
	require.Equal(t, []int64{id2}, ids(second))
	require.EqualValues(t, 2, second[0].ReadCt)
}

func TestReadQtyOrderAndConditional(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	createQueue(t, db, "r")
	all := sendN(t, db, "r", 5)

	require.Equal(t, all[:3], ids(read(t, db, "r", 30, 3)), "lowest msg_ids first")
	require.Equal(t, all[3:], ids(read(t, db, "r", 30, 10)))
	require.Empty(t, read(t, db, "r", 30, 10))

	createQueue(t, db, "c")
	a := send(t, db, "c", `{"type":"a","n":1}`)
	b := send(t, db, "c", `{"type":"b","n":2}`)
	got := queryMessages(t, db,
		"SELECT "+msgCols+" FROM pgmq.read($1::text, $2::int, $3::int, $4::jsonb)", "c", 30, 10, `{"type":"b"}`)
	require.Equal(t, []int64{b}, ids(got))
	got = queryMessages(t, db,
		"SELECT "+msgCols+" FROM pgmq.read($1::text, $2::int, $3::int, $4::jsonb)", "c", 30, 10, `{}`)
	require.Equal(t, []int64{a}, ids(got))

	// Named arguments.
	id := send(t, db, "c", `{"type":"c"}`)
	got = queryMessages(t, db,
		"SELECT "+msgCols+" FROM pgmq.read(queue_name => $1::text, vt => $2::int, qty => $3::int, conditional => $4::jsonb)",
		"c", 30, 10, `{"type":"c"}`)
	require.Equal(t, []int64{id}, ids(got))
}

func TestReadWithPoll(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "p")

	// Returns at once when a message exists (defaults for the poll arguments).
	id := send(t, db, "p", `{"a":1}`)
	start := time.Now()
	got := queryMessages(t, db,
		"SELECT "+msgCols+" FROM pgmq.read_with_poll($1::text, $2::int, $3::int)", "p", 30, 1)
	require.Equal(t, []int64{id}, ids(got))
	require.EqualValues(t, 1, got[0].ReadCt)
	require.Less(t, time.Since(start), 2*time.Second)

	// Empty after ~max_poll_seconds when nothing is visible.
	start = time.Now()
	got = queryMessages(t, db,
		"SELECT "+msgCols+" FROM pgmq.read_with_poll($1::text, $2::int, $3::int, $4::int, $5::int)", "p", 30, 1, 1, 50)
	elapsed := time.Since(start)
	require.Empty(t, got)
	require.GreaterOrEqual(t, elapsed, 900*time.Millisecond)
	require.Less(t, elapsed, 4*time.Second)

	// Picks up a message committed while it polls.
	type result struct {
		msgs []message
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		s := time.Now()
		msgs, err := tryQueryMessages(ctx, db,
			"SELECT "+msgCols+" FROM pgmq.read_with_poll($1::text, $2::int, $3::int, $4::int, $5::int, $6::jsonb)",
			"p", 30, 1, 10, 50, `{}`)
		done <- result{msgs, err, time.Since(s)}
	}()
	waitUntil(t, 10*time.Second, "read_with_poll to be running", func() bool {
		var n int
		require.NoError(t, db.QueryRow(ctx, `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state = 'active'
			  AND query LIKE '%read_with_poll%' AND pid <> pg_backend_pid()`).Scan(&n))
		return n == 1
	})
	id2 := send(t, db, "p", `{"a":2}`)
	select {
	case r := <-done:
		require.NoError(t, r.err)
		require.Equal(t, []int64{id2}, ids(r.msgs))
		require.Less(t, r.took, 8*time.Second)
	case <-time.After(15 * time.Second):
		t.Fatal("read_with_poll did not return")
	}
}

func TestPop(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "p")
	all := sendN(t, db, "p", 4)

	// Default qty = 1.
	got := queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.pop($1::text)", "p")
	require.Equal(t, all[:1], ids(got))
	require.Zero(t, got[0].ReadCt, "pop does not count as a read")
	require.Nil(t, got[0].LastReadAt)

	// A read message keeps its read_ct when popped.
	require.Equal(t, all[1:2], ids(read(t, db, "p", 0, 1)))
	got = queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.pop($1::text, $2::int)", "p", 2)
	require.Equal(t, all[1:3], ids(got))
	require.EqualValues(t, 1, got[0].ReadCt)
	require.Zero(t, got[1].ReadCt)

	require.Equal(t, all[3:], ids(queueRows(t, db, "p")), "popped rows are deleted")

	// Invisible messages are not popped.
	var delayed int64
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.send($1::text, $2::jsonb, $3::int)", "p", `{}`, 3600).Scan(&delayed))
	got = queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.pop($1::text, $2::int)", "p", 10)
	require.Equal(t, all[3:], ids(got))
	require.Empty(t, queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.pop($1::text, $2::int)", "p", 10))
	require.Equal(t, []int64{delayed}, ids(queueRows(t, db, "p")))
}

func TestDelete(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "d")
	all := sendN(t, db, "d", 4)

	var ok bool
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.delete($1::text, $2::bigint)", "d", all[0]).Scan(&ok))
	require.True(t, ok)
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.delete($1::text, $2::bigint)", "d", all[0]).Scan(&ok))
	require.False(t, ok, "already deleted")
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.delete($1::text, $2::bigint)", "d", int64(999999)).Scan(&ok))
	require.False(t, ok)

	deleted := queryIDs(t, db, "SELECT * FROM pgmq.delete($1::text, $2::bigint[])",
		"d", []int64{all[1], 999999, all[2]})
	require.Equal(t, []int64{all[1], all[2]}, deleted, "missing ids are omitted")
	require.Empty(t, queryIDs(t, db, "SELECT * FROM pgmq.delete($1::text, $2::bigint[])", "d", []int64{999999}))

	require.Equal(t, all[3:], ids(queueRows(t, db, "d")))
	require.Empty(t, archiveRows(t, db, "d"), "delete does not archive")
}

func TestArchive(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "a")

	var first int64
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.send($1::text, $2::jsonb, $3::jsonb)",
		"a", `{"a":1}`, `{"h":1}`).Scan(&first))
	rest := sendN(t, db, "a", 3)
	readRows := read(t, db, "a", 60, 1)
	require.Equal(t, []int64{first}, ids(readRows))
	original := queueRows(t, db, "a")[0]

	before := serverNow(t, db)
	var ok bool
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.archive($1::text, $2::bigint)", "a", first).Scan(&ok))
	require.True(t, ok)
	after := serverNow(t, db)
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.archive($1::text, $2::bigint)", "a", first).Scan(&ok))
	require.False(t, ok, "already archived")
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.archive($1::text, $2::bigint)", "a", int64(999999)).Scan(&ok))
	require.False(t, ok)

	archived := archiveRows(t, db, "a")
	require.Len(t, archived, 1)
	ar := archived[0]
	require.Equal(t, first, ar.MsgID)
	require.EqualValues(t, 1, ar.ReadCt)
	require.True(t, original.EnqueuedAt.Equal(ar.EnqueuedAt))
	require.NotNil(t, ar.LastReadAt)
	require.True(t, original.LastReadAt.Equal(*ar.LastReadAt))
	require.True(t, original.VT.Equal(ar.VT))
	require.JSONEq(t, `{"a":1}`, string(ar.Message))
	require.JSONEq(t, `{"h":1}`, string(ar.Headers))
	require.WithinRange(t, ar.ArchivedAt, before.Add(-time.Second), after)

	moved := queryIDs(t, db, "SELECT * FROM pgmq.archive($1::text, $2::bigint[])",
		"a", []int64{rest[0], 999999, rest[2]})
	require.Equal(t, []int64{rest[0], rest[2]}, moved, "missing ids are omitted")
	require.Equal(t, []int64{rest[1]}, ids(queueRows(t, db, "a")), "archived rows leave the queue")
	var archivedIDs []int64
	for _, r := range archiveRows(t, db, "a") {
		archivedIDs = append(archivedIDs, r.MsgID)
	}
	require.Equal(t, []int64{first, rest[0], rest[2]}, archivedIDs)

	// Archive is atomic with the caller's transaction.
	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, tx.QueryRow(ctx, "SELECT pgmq.archive($1::text, $2::bigint)", "a", rest[1]).Scan(&ok))
	require.True(t, ok)
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, []int64{rest[1]}, ids(queueRows(t, db, "a")))
	require.Len(t, archiveRows(t, db, "a"), 3)
}

func TestSetVT(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	createQueue(t, db, "v")
	all := sendN(t, db, "v", 4)

	// Integer form: absolute from clock_timestamp(), not an extension.
	require.Equal(t, all[:1], ids(read(t, db, "v", 3600, 1)))
	before := serverNow(t, db)
	got := queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.set_vt($1::text, $2::bigint, $3::int)", "v", all[0], 10)
	after := serverNow(t, db)
	require.Equal(t, all[:1], ids(got))
	require.WithinRange(t, got[0].VT, before.Add(10*time.Second), after.Add(10*time.Second))
	require.EqualValues(t, 1, got[0].ReadCt, "set_vt does not count as a read")
	require.JSONEq(t, `{"n":0}`, string(got[0].Message))

	// vt = 0 makes it visible again.
	got = queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.set_vt($1::text, $2::bigint, $3::int)", "v", all[0], 0)
	require.Len(t, got, 1)
	require.Equal(t, all[:1], ids(read(t, db, "v", 3600, 1)))

	// timestamptz form sets vt exactly.
	at := before.Add(5 * time.Hour).Truncate(time.Microsecond)
	got = queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.set_vt($1::text, $2::bigint, $3::timestamptz)", "v", all[1], at)
	require.Len(t, got, 1)
	require.True(t, at.Equal(got[0].VT))
	require.Zero(t, got[0].ReadCt)

	// Array forms return only the rows that exist.
	before = serverNow(t, db)
	got = queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.set_vt($1::text, $2::bigint[], $3::int)",
		"v", []int64{all[2], 999999, all[3]}, 60)
	after = serverNow(t, db)
	require.Equal(t, all[2:], ids(got))
	for _, m := range got {
		require.WithinRange(t, m.VT, before.Add(time.Minute), after.Add(time.Minute))
	}
	got = queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.set_vt($1::text, $2::bigint[], $3::timestamptz)",
		"v", []int64{all[2], all[3], 999999}, at)
	require.Equal(t, all[2:], ids(got))
	for _, m := range got {
		require.True(t, at.Equal(m.VT))
	}
	require.Empty(t, read(t, db, "v", 30, 10), "all four are hidden")

	// Unknown id: empty set (all four forms).
	require.Empty(t, queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.set_vt($1::text, $2::bigint, $3::int)", "v", int64(999999), 0))
	require.Empty(t, queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.set_vt($1::text, $2::bigint, $3::timestamptz)", "v", int64(999999), at))
	require.Empty(t, queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.set_vt($1::text, $2::bigint[], $3::int)", "v", []int64{999999}, 0))
	require.Empty(t, queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.set_vt($1::text, $2::bigint[], $3::timestamptz)", "v", []int64{999999}, at))
}

func TestPurgeQueue(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "pq")
	all := sendN(t, db, "pq", 3)
	_, err := db.Exec(ctx, "SELECT pgmq.archive($1::text, $2::bigint)", "pq", all[0])
	require.NoError(t, err)

	var n int64
	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.purge_queue($1::text)", "pq").Scan(&n))
	require.EqualValues(t, 2, n)
	require.Empty(t, queueRows(t, db, "pq"))
	require.Len(t, archiveRows(t, db, "pq"), 1, "purge leaves the archive alone")

	require.NoError(t, db.QueryRow(ctx, "SELECT pgmq.purge_queue($1::text)", "pq").Scan(&n))
	require.Zero(t, n)

	next := send(t, db, "pq", `{}`)
	require.Greater(t, next, all[2], "msg_id is not restarted")
}

func TestDropQueue(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	conn, notes := noticeConn(t, db)

	createQueue(t, db, "gone")
	send(t, db, "gone", `{}`)

	var ok bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT pgmq.drop_queue($1::text)", "gone").Scan(&ok))
	require.True(t, ok)
	var qReg, aReg, seqReg *string
	require.NoError(t, db.QueryRow(ctx, `SELECT to_regclass('pgmq.q_gone')::text, to_regclass('pgmq.a_gone')::text,
		to_regclass('pgmq.q_gone_msg_id_seq')::text`).Scan(&qReg, &aReg, &seqReg))
	require.Nil(t, qReg)
	require.Nil(t, aReg)
	require.Nil(t, seqReg)
	var metaRows int
	require.NoError(t, db.QueryRow(ctx, "SELECT count(*) FROM pgmq.meta WHERE queue_name = 'gone'").Scan(&metaRows))
	require.Zero(t, metaRows)

	// Missing queue: false with a NOTICE.
	notes.reset()
	require.NoError(t, conn.QueryRow(ctx, "SELECT pgmq.drop_queue($1::text)", "gone").Scan(&ok))
	require.False(t, ok)
	requireNotice(t, notes.all(), "NOTICE", "pgmq queue `gone` does not exist")

	// Deprecated 2-argument form: WARNING, and true even when missing.
	createQueue(t, db, "old")
	notes.reset()
	require.NoError(t, conn.QueryRow(ctx, "SELECT pgmq.drop_queue($1::text, $2::boolean)", "old", false).Scan(&ok))
	require.True(t, ok)
	requireNoticeContains(t, notes.all(), "WARNING", "deprecated and will be removed in PGMQ v2.0")
	require.NoError(t, db.QueryRow(ctx, "SELECT to_regclass('pgmq.q_old')::text").Scan(&qReg))
	require.Nil(t, qReg)

	notes.reset()
	require.NoError(t, conn.QueryRow(ctx, "SELECT pgmq.drop_queue($1::text, $2::boolean)", "old", false).Scan(&ok))
	require.True(t, ok)
	requireNoticeContains(t, notes.all(), "WARNING", "deprecated and will be removed in PGMQ v2.0")

	// A dropped queue can be created again.
	createQueue(t, db, "gone")
	require.Len(t, queueRows(t, db, "gone"), 0)
}

func requireNotice(t *testing.T, notes []pgconn.Notice, severity, msg string) {
	t.Helper()
	for _, n := range notes {
		if n.Severity == severity && n.Message == msg {
			return
		}
	}
	t.Fatalf("no %s %q among %+v", severity, msg, notes)
}

func requireNoticeContains(t *testing.T, notes []pgconn.Notice, severity, substr string) {
	t.Helper()
	for _, n := range notes {
		if n.Severity == severity && strings.Contains(n.Message, substr) {
			return
		}
	}
	t.Fatalf("no %s containing %q among %+v", severity, substr, notes)
}

func TestListQueues(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()

	rows, err := db.Query(ctx, "SELECT queue_name, is_partitioned, is_unlogged, created_at FROM pgmq.list_queues()")
	require.NoError(t, err)
	empty, err := pgx.CollectRows(rows, pgx.RowToMap)
	require.NoError(t, err)
	require.Empty(t, empty)

	createQueue(t, db, "one")
	createQueue(t, db, "two")
	_, err = db.Exec(ctx, "SELECT pgmq.create_unlogged($1::text)", "three")
	require.NoError(t, err)

	type queueRecord struct {
		Name          string
		IsPartitioned bool
		IsUnlogged    bool
		CreatedAt     time.Time
	}
	rows, err = db.Query(ctx, "SELECT queue_name, is_partitioned, is_unlogged, created_at FROM pgmq.list_queues() ORDER BY queue_name")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[queueRecord])
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, []string{"one", "three", "two"}, []string{got[0].Name, got[1].Name, got[2].Name})
	for _, q := range got {
		require.False(t, q.IsPartitioned)
		require.Equal(t, q.Name == "three", q.IsUnlogged)
		require.False(t, q.CreatedAt.IsZero())
	}

	_, err = db.Exec(ctx, "SELECT pgmq.drop_queue($1::text)", "two")
	require.NoError(t, err)
	var names []string
	require.NoError(t, db.QueryRow(ctx, "SELECT array_agg(queue_name::text ORDER BY queue_name) FROM pgmq.list_queues()").Scan(&names))
	require.Equal(t, []string{"one", "three"}, names)
}

type metricsResult struct {
	QueueName              string
	QueueLength            int64
	NewestMsgAgeSec        *int32
	OldestMsgAgeSec        *int32
	TotalMessages          int64
	ScrapeTime             time.Time
	QueueVisibleLength     int64
	DefaultPartitionLength *int64
}

const metricsCols = `queue_name, queue_length, newest_msg_age_sec, oldest_msg_age_sec, total_messages,
	scrape_time, queue_visible_length, default_partition_length`

func metrics(t *testing.T, db querier, queue string) metricsResult {
	t.Helper()
	rows, err := db.Query(t.Context(), "SELECT "+metricsCols+" FROM pgmq.metrics($1::text)", queue)
	require.NoError(t, err)
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[metricsResult])
	require.NoError(t, err)
	return m
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "m")

	m := metrics(t, db, "m")
	require.Equal(t, "m", m.QueueName)
	require.Zero(t, m.QueueLength)
	require.Nil(t, m.NewestMsgAgeSec)
	require.Nil(t, m.OldestMsgAgeSec)
	require.Zero(t, m.TotalMessages, "sequence never called")
	require.Zero(t, m.QueueVisibleLength)
	require.Nil(t, m.DefaultPartitionLength, "NULL for non-partitioned queues")
	require.False(t, m.ScrapeTime.IsZero())

	all := sendN(t, db, "m", 3)
	_, err := db.Exec(ctx, "SELECT pgmq.send($1::text, $2::jsonb, $3::int)", "m", `{}`, 3600)
	require.NoError(t, err)
	_, err = db.Exec(ctx, "SELECT pgmq.delete($1::text, $2::bigint)", "m", all[0])
	require.NoError(t, err)

	m = metrics(t, db, "m")
	require.EqualValues(t, 3, m.QueueLength)
	require.EqualValues(t, 2, m.QueueVisibleLength, "the delayed message is not visible")
	require.EqualValues(t, 4, m.TotalMessages, "total counts every id handed out")
	require.NotNil(t, m.NewestMsgAgeSec)
	require.NotNil(t, m.OldestMsgAgeSec)
	require.GreaterOrEqual(t, *m.NewestMsgAgeSec, int32(0))
	require.GreaterOrEqual(t, *m.OldestMsgAgeSec, *m.NewestMsgAgeSec)
	require.Nil(t, m.DefaultPartitionLength)

	// Messages being read are still in queue_length but not visible.
	read(t, db, "m", 60, 1)
	m = metrics(t, db, "m")
	require.EqualValues(t, 3, m.QueueLength)
	require.EqualValues(t, 1, m.QueueVisibleLength)

	// scrape_time is now() (transaction start).
	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	var txNow time.Time
	require.NoError(t, tx.QueryRow(ctx, "SELECT now()").Scan(&txNow))
	m = metrics(t, tx, "m")
	require.True(t, txNow.Equal(m.ScrapeTime))
}

func TestMetricsAll(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()

	rows, err := db.Query(ctx, "SELECT "+metricsCols+" FROM pgmq.metrics_all()")
	require.NoError(t, err)
	none, err := pgx.CollectRows(rows, pgx.RowToStructByPos[metricsResult])
	require.NoError(t, err)
	require.Empty(t, none)

	createQueue(t, db, "x")
	createQueue(t, db, "y")
	sendN(t, db, "x", 2)
	sendN(t, db, "y", 5)

	rows, err = db.Query(ctx, "SELECT "+metricsCols+" FROM pgmq.metrics_all() ORDER BY queue_name")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[metricsResult])
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "x", got[0].QueueName)
	require.EqualValues(t, 2, got[0].QueueLength)
	require.EqualValues(t, 2, got[0].TotalMessages)
	require.Equal(t, "y", got[1].QueueName)
	require.EqualValues(t, 5, got[1].QueueLength)
	require.EqualValues(t, 5, got[1].QueueVisibleLength)
}

func TestSendRollbackLeavesGap(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "tx")

	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	rolledBack := send(t, tx, "tx", `{"lost":true}`)
	require.Equal(t, []int64{rolledBack}, ids(queueRows(t, tx, "tx")), "visible inside its transaction")
	require.Empty(t, queueRows(t, db, "tx"), "not visible outside before commit")
	require.NoError(t, tx.Rollback(ctx))

	require.Empty(t, queueRows(t, db, "tx"), "rolled-back send leaves no row")
	kept := send(t, db, "tx", `{"kept":true}`)
	require.Greater(t, kept, rolledBack, "identity values are not rolled back")
	require.Equal(t, []int64{kept}, ids(queueRows(t, db, "tx")))

	m := metrics(t, db, "tx")
	require.EqualValues(t, 1, m.QueueLength)
	require.EqualValues(t, 2, m.TotalMessages, "total_messages counts rolled-back sends")

	// Committed send inside a caller's transaction.
	// enqueued_at is now() (transaction start); vt is clock_timestamp().
	tx, err = db.Begin(ctx)
	require.NoError(t, err)
	var txStart time.Time
	require.NoError(t, tx.QueryRow(ctx, "SELECT now()").Scan(&txStart))
	committed := send(t, tx, "tx", `{"c":1}`)
	require.NoError(t, tx.Commit(ctx))
	rows := queueRows(t, db, "tx")
	require.Equal(t, []int64{kept, committed}, ids(rows))
	require.True(t, txStart.Equal(rows[1].EnqueuedAt), "enqueued_at %v, transaction start %v", rows[1].EnqueuedAt, txStart)
	require.True(t, rows[1].VT.After(rows[1].EnqueuedAt), "vt comes from clock_timestamp()")
}

func TestReadRollbackRestoresMessage(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "tx")
	id := send(t, db, "tx", `{}`)
	original := queueRows(t, db, "tx")[0]

	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	got := read(t, tx, "tx", 3600, 1)
	require.Equal(t, []int64{id}, ids(got))
	require.NoError(t, tx.Rollback(ctx))

	after := queueRows(t, db, "tx")[0]
	require.Zero(t, after.ReadCt)
	require.Nil(t, after.LastReadAt)
	require.True(t, original.VT.Equal(after.VT))
	require.Equal(t, []int64{id}, ids(read(t, db, "tx", 30, 1)))
}

func TestConcurrentReadersSkipLocked(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "c")
	all := sendN(t, db, "c", 3)

	tx1, err := db.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx1.Rollback(context.Background()) }()
	tx2, err := db.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx2.Rollback(context.Background()) }()

	require.Equal(t, all[:1], ids(read(t, tx1, "c", 30, 1)))
	// tx2 does not block on tx1's row lock and skips it (lock_timeout turns a
	// blocking implementation into a failure instead of a hang).
	_, err = tx2.Exec(ctx, "SET LOCAL lock_timeout = '2s'")
	require.NoError(t, err)
	require.Equal(t, all[1:], ids(read(t, tx2, "c", 30, 10)))
	// pop skips locked rows as well.
	require.Empty(t, queryMessages(t, db, "SELECT "+msgCols+" FROM pgmq.pop($1::text, $2::int)", "c", 10))

	require.NoError(t, tx2.Commit(ctx))
	require.NoError(t, tx1.Rollback(ctx))
	// tx1's read rolled back: message 1 is visible again, read_ct restored.
	got := read(t, db, "c", 30, 10)
	require.Equal(t, all[:1], ids(got))
	require.EqualValues(t, 1, got[0].ReadCt)
}

func TestConcurrentConsumersGetDistinctMessages(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "w")
	const total = 60
	msgs := make([]string, total)
	for i := range msgs {
		msgs[i] = fmt.Sprintf(`{"i":%d}`, i)
	}
	sent := queryIDs(t, db, "SELECT * FROM pgmq.send_batch($1::text, $2::jsonb[])", "w", msgs)
	require.Len(t, sent, total)

	const workers = 4
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := tryQueryMessages(ctx, db,
					"SELECT "+msgCols+" FROM pgmq.read($1::text, $2::int, $3::int)", "w", 300, 3)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					seen[m.MsgID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, seen, total)
	for id, n := range seen {
		require.Equal(t, 1, n, "msg %d handed out %d times within its vt", id, n)
	}
}

func TestQueueNameCase(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()

	// Table names are lower-cased; meta keeps the name as given (§5).
	createQueue(t, db, "MyQueue")
	var q, a, idx *string
	require.NoError(t, db.QueryRow(ctx, `SELECT to_regclass('pgmq.q_myqueue')::text, to_regclass('pgmq.a_myqueue')::text,
		to_regclass('pgmq."archived_at_idx_MyQueue"')::text`).Scan(&q, &a, &idx))
	require.NotNil(t, q)
	require.NotNil(t, a)
	require.NotNil(t, idx, "archive index is named from the name as given")
	var metaName string
	require.NoError(t, db.QueryRow(ctx, "SELECT queue_name FROM pgmq.meta").Scan(&metaName))
	require.Equal(t, "MyQueue", metaName)

	// Any spelling reaches the same tables.
	id := send(t, db, "MYQUEUE", `{}`)
	require.Equal(t, []int64{id}, ids(read(t, db, "myqueue", 30, 1)))
	require.Equal(t, "MyQueue", metrics(t, db, "MyQueue").QueueName)

	// Spaces are allowed and quoted.
	createQueue(t, db, "with space")
	id = send(t, db, "with space", `{}`)
	require.Equal(t, []int64{id}, ids(queueRows(t, db, "with space")))
}
