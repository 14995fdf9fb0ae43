package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pipelined is a db.DBTX for one sqlc-generated QueryRow call that sends a
// statement before it (BEGIN) or after it (COMMIT) in the same round trip,
// as one pgx batch. CompleteStep and FailStep own their transaction, so
// they can open it with the step's record_step_result and close it with
// its emit_events: two round trips where pgx.Tx takes four (BEGIN, record,
// emit, COMMIT). The SQL stays sqlc's; only the transport changes.
type pipelined struct {
	conn          *pgxpool.Conn
	before, after string
}

var errPipelinedUse = errors.New("pipelined executor: only QueryRow is supported")

func (p pipelined) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errPipelinedUse
}

func (p pipelined) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errPipelinedUse
}

func (p pipelined) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	b := &pgx.Batch{}
	if p.before != "" {
		b.Queue(p.before)
	}
	b.Queue(sql, args...)
	if p.after != "" {
		b.Queue(p.after)
	}
	return &batchRow{br: p.conn.SendBatch(ctx, b), before: p.before != "", after: p.after != ""}
}

// batchRow reads the batch in order. An error in any statement is the
// row's error: after a failed statement the server skips the rest (a
// COMMIT after a failed emit never runs; the caller rolls back).
type batchRow struct {
	br            pgx.BatchResults
	before, after bool
}

func (r *batchRow) Scan(dest ...any) error {
	var err error
	if r.before {
		_, err = r.br.Exec()
	}
	if err == nil {
		err = r.br.QueryRow().Scan(dest...)
	}
	if err == nil && r.after {
		var tag pgconn.CommandTag
		if tag, err = r.br.Exec(); err == nil && tag.String() == "ROLLBACK" {
			err = pgx.ErrTxCommitRollback
		}
	}
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

// ownTx is a transaction CompleteStep or FailStep runs on a pooled
// connection, begun with its first statement and committed with its last.
type ownTx struct{ conn *pgxpool.Conn }

func (c *Client) beginOwnTx(ctx context.Context) (*ownTx, error) {
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("error beginning transaction: %w", err)
	}
	return &ownTx{conn: conn}, nil
}

// first runs the transaction's first statement, preceded by BEGIN.
// READ COMMITTED whatever the server's default: step operations need it
// (stepevents.refresh_task_state).
func (t *ownTx) first() pipelined {
	return pipelined{conn: t.conn, before: "BEGIN ISOLATION LEVEL READ COMMITTED"}
}

// last runs the transaction's last statement, followed by COMMIT.
func (t *ownTx) last() pipelined { return pipelined{conn: t.conn, after: "COMMIT"} }

// open reports a transaction still open on the connection (the server's
// own status, as of its last reply): after a pipelined COMMIT it is not.
func (t *ownTx) open() bool {
	pc := t.conn.Conn().PgConn()
	return !pc.IsClosed() && pc.TxStatus() != 'I'
}

// commit sends COMMIT alone, when no statement carried it.
func (t *ownTx) commit(ctx context.Context) error {
	if !t.open() {
		return nil
	}
	tag, err := t.conn.Exec(ctx, "COMMIT")
	if err == nil && tag.String() == "ROLLBACK" {
		err = pgx.ErrTxCommitRollback
	}
	if err != nil {
		return fmt.Errorf("error committing transaction: %w", err)
	}
	return nil
}

// end rolls back what is still open and returns the connection to the
// pool; a connection whose state is unknown is closed instead.
func (t *ownTx) end(ctx context.Context) {
	defer t.conn.Release()
	if !t.open() {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := t.conn.Exec(rctx, "ROLLBACK"); err != nil {
		_ = t.conn.Conn().Close(rctx) // the pool discards a closed connection
	}
}
