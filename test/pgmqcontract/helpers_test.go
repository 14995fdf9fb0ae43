package pgmqcontract_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// querier is satisfied by *pgxpool.Pool, *pgx.Conn and pgx.Tx.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// message is a pgmq.message_record decoded by column name.
type message struct {
	MsgID      int64
	ReadCt     int32
	EnqueuedAt time.Time
	LastReadAt *time.Time
	VT         time.Time
	Message    []byte // raw jsonb, nil when SQL NULL
	Headers    []byte // raw jsonb, nil when SQL NULL
}

// msgCols selects message_record columns by name (never by position).
const msgCols = "msg_id, read_ct, enqueued_at, last_read_at, vt, message, headers"

// queryMessages runs a query selecting msgCols and returns the rows sorted by
// msg_id (pgmq does not promise the order of returned rows).
func queryMessages(t *testing.T, db querier, sql string, args ...any) []message {
	t.Helper()
	msgs, err := tryQueryMessages(t.Context(), db, sql, args...)
	require.NoError(t, err)
	return msgs
}

func tryQueryMessages(ctx context.Context, db querier, sql string, args ...any) ([]message, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	msgs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (message, error) {
		var m message
		err := row.Scan(&m.MsgID, &m.ReadCt, &m.EnqueuedAt, &m.LastReadAt, &m.VT, &m.Message, &m.Headers)
		return m, err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(msgs, func(a, b message) int { return int(a.MsgID - b.MsgID) })
	return msgs, nil
}

func ids(msgs []message) []int64 {
	out := make([]int64, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.MsgID)
	}
	return out
}

func queryIDs(t *testing.T, db querier, sql string, args ...any) []int64 {
	t.Helper()
	rows, err := db.Query(t.Context(), sql, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	slices.Sort(out)
	return out
}

func createQueue(t *testing.T, db querier, name string) {
	t.Helper()
	_, err := db.Exec(t.Context(), "SELECT pgmq.create($1::text)", name)
	require.NoError(t, err)
}

func send(t *testing.T, db querier, queue, msg string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, db.QueryRow(t.Context(), "SELECT pgmq.send($1::text, $2::jsonb)", queue, msg).Scan(&id))
	return id
}

func sendN(t *testing.T, db querier, queue string, n int) []int64 {
	t.Helper()
	out := make([]int64, 0, n)
	for i := range n {
		out = append(out, send(t, db, queue, fmt.Sprintf(`{"n":%d}`, i)))
	}
	return out
}

func read(t *testing.T, db querier, queue string, vt, qty int) []message {
	t.Helper()
	return queryMessages(t, db,
		"SELECT "+msgCols+" FROM pgmq.read($1::text, $2::int, $3::int)", queue, vt, qty)
}

// queueRows reads the queue table directly, as plain-SQL inspection does.
func queueRows(t *testing.T, db querier, queue string) []message {
	t.Helper()
	return queryMessages(t, db,
		"SELECT "+msgCols+" FROM "+pgx.Identifier{"pgmq", "q_" + queue}.Sanitize()+" ORDER BY msg_id")
}

type archiveRow struct {
	message
	ArchivedAt time.Time
}

func archiveRows(t *testing.T, db querier, queue string) []archiveRow {
	t.Helper()
	rows, err := db.Query(t.Context(),
		"SELECT "+msgCols+", archived_at FROM "+pgx.Identifier{"pgmq", "a_" + queue}.Sanitize()+" ORDER BY msg_id")
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (archiveRow, error) {
		var a archiveRow
		err := row.Scan(&a.MsgID, &a.ReadCt, &a.EnqueuedAt, &a.LastReadAt, &a.VT, &a.Message, &a.Headers, &a.ArchivedAt)
		return a, err
	})
	require.NoError(t, err)
	return out
}

// serverNow returns clock_timestamp() on the server, so time assertions do not
// depend on the client clock.
func serverNow(t *testing.T, db querier) time.Time {
	t.Helper()
	var now time.Time
	require.NoError(t, db.QueryRow(t.Context(), "SELECT clock_timestamp()").Scan(&now))
	return now
}

func requirePgError(t *testing.T, err error, code, msg string) {
	t.Helper()
	require.Error(t, err)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want *pgconn.PgError, got %T: %v", err, err)
	require.Equal(t, code, pgErr.Code, "SQLSTATE for %q", pgErr.Message)
	require.Equal(t, msg, pgErr.Message)
}

// waitUntil polls cond until it is true or the deadline passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

type notices struct {
	mu   sync.Mutex
	list []pgconn.Notice
}

func (n *notices) all() []pgconn.Notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.list)
}

func (n *notices) reset() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = nil
}

// noticeConn opens a dedicated connection to the pool's database that records
// NOTICE/WARNING messages.
func noticeConn(t *testing.T, pool *pgxpool.Pool) (*pgx.Conn, *notices) {
	t.Helper()
	n := &notices{}
	cfg := pool.Config().ConnConfig.Copy()
	cfg.OnNotice = func(_ *pgconn.PgConn, notice *pgconn.Notice) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.list = append(n.list, *notice)
	}
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn, n
}
