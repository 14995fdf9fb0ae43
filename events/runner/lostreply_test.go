package runner_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/runner"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/test/testdb"
)

// commitDropper is a TCP proxy in front of PostgreSQL that, once armed,
// cuts the connection on which the server next reports a COMMIT done,
// without passing that reply on: the transaction is committed and the
// client is told its connection broke.
type commitDropper struct {
	ln      net.Listener
	target  string
	armed   atomic.Bool
	dropped atomic.Int64
	wg      sync.WaitGroup
}

func newCommitDropper(t *testing.T, target string) *commitDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &commitDropper{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *commitDropper) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.wg.Go(func() { _, _ = io.Copy(server, client); _ = server.Close() })
		p.wg.Go(func() { p.relay(client, server); _ = client.Close(); _ = server.Close() })
	}
}

// relay passes the server's messages (type byte, int32 length, body) to
// the client, one by one, until the armed COMMIT reply. The connection
// must not use TLS (the bytes must be readable).
func (p *commitDropper) relay(client, server net.Conn) {
	in := bufio.NewReader(server)
	head := make([]byte, 5)
	for {
		if _, err := io.ReadFull(in, head); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(head[1:])-4)
		if _, err := io.ReadFull(in, body); err != nil {
			return
		}
		if head[0] == 'C' && string(body) == "COMMIT\x00" && p.armed.CompareAndSwap(true, false) {
			p.dropped.Add(1)
			return
		}
		if _, err := client.Write(append(head, body...)); err != nil {
			return
		}
	}
}

// TestLostCommitReplyIsRecorded: the reply to the COMMIT that records an
// outcome is lost with its connection. The runner retries, finds the
// attempt ended, and recognises its own outcome in the step's history: it
// counts it completed (or failed) and unacknowledged, not superseded, and
// the outcome and its durable event are there once.
func TestLostCommitReplyIsRecorded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		result    json.RawMessage
		err       error
		state     string
		queued    int
		completed uint64
		failed    uint64
	}{
		{"success", json.RawMessage(`{"done": true}`), nil, "complete", 1, 1, 0},
		{"success without a result", nil, nil, "complete", 1, 1, 0},
		{"failure", nil, errors.New("boom"), "waiting_for_retry", 0, 0, 1},
		{"failure with invalid UTF-8", nil, errors.New("bad \xff byte"), "waiting_for_retry", 0, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg, err := pgxpool.ParseConfig(testdb.NewURL(t))
			require.NoError(t, err)
			require.Nil(t, cfg.ConnConfig.TLSConfig, "the proxy reads the protocol: no TLS")
			proxy := newCommitDropper(t, net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))))
			cfg.ConnConfig.Host, cfg.ConnConfig.Port = "127.0.0.1", uint16(proxy.ln.Addr().(*net.TCPAddr).Port)
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			client, err := events.NewClient(ctx, pool, &events.Config{})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, client.Close(context.Background())) })
			tpl, err := template.Load("runner_bench.yaml", []byte(benchTemplate))
			require.NoError(t, err)
			require.NoError(t, client.ApplyTemplate(ctx, tpl))
			task, err := client.CreateTask(ctx, events.CreateTaskParams{Namespace: "runner_bench", Name: "runner_bench"})
			require.NoError(t, err)

			handler := func(context.Context, events.Step, events.Task) (json.RawMessage, error) {
				proxy.armed.Store(true) // the next COMMIT is this outcome's
				return tc.result, tc.err
			}
			r, err := runner.New(client, pool, runner.Config{Workers: 1, PollInterval: 5 * time.Millisecond,
				RecoverInterval: -1, Handlers: map[string]runner.HandlerFunc{"bench.work": handler}})
			require.NoError(t, err)
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(runCtx) }()
			waitFor(t, 10*time.Second, "the outcome to be counted", func() bool {
				st := r.Stats()
				return st.Completed+st.Failed+st.Superseded+st.RecordErrors > 0
			})
			stop()
			require.NoError(t, <-done)

			st := r.Stats()
			require.Equal(t, int64(1), proxy.dropped.Load(), "the COMMIT reply was dropped")
			require.Equal(t, tc.completed, st.Completed)
			require.Equal(t, tc.failed, st.Failed)
			require.Equal(t, uint64(1), st.Unacknowledged)
			require.Zero(t, st.Superseded)
			require.Zero(t, st.RecordErrors)

			steps, err := events.TaskSteps(ctx, pool, task)
			require.NoError(t, err)
			require.Equal(t, tc.state, steps[0].State, "recorded once, by the try whose reply was lost")
			var queued int
			require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pgmq.q_runner_bench_domain_events`).Scan(&queued))
			require.Equal(t, tc.queued, queued)
		})
	}
}

// RecordedUnderClaim, the check behind Unacknowledged, recognises only the
// outcome that ended the claim's attempt: not another failure (a stale
// recovery's), not another result, not a later attempt's outcome.
func TestRecordedUnderClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 0)
	applyDiamond(t, b)
	task := newDiamondTask(t, b)
	claimA := func() (uuid.UUID, int64) {
		t.Helper()
		var step uuid.UUID
		var claim int64
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT step_uuid, claim_id FROM stepevents.claim_ready_steps(1)
			WHERE task_uuid = $1`, task).Scan(&step, &claim))
		return step, claim
	}
	recorded := func(step uuid.UUID, claim int64, succeeded bool, result, message string) bool {
		t.Helper()
		var res []byte
		if succeeded {
			res = []byte(result)
		}
		msg, err := json.Marshal(message)
		require.NoError(t, err)
		ok, err := db.New().RecordedUnderClaim(ctx, b.pool, db.RecordedUnderClaimParams{ClaimID: claim, StepUuid: step,
			Succeeded: succeeded, Result: res, ErrorMessageJson: msg})
		require.NoError(t, err)
		return ok
	}

	step, first := claimA()
	_, err := b.client.FailClaimedStep(ctx, step, first, events.Failure{Message: "attempt abandoned"})
	require.NoError(t, err)
	require.True(t, recorded(step, first, false, "", "attempt abandoned"))
	require.False(t, recorded(step, first, false, "", "boom"), "another failure ended it")
	require.False(t, recorded(step, first, true, `{"a": 1}`, ""), "a failure ended it")

	_, err = b.pool.Exec(ctx, `UPDATE stepevents.workflow_steps SET next_retry_at = now() WHERE step_uuid = $1`, step)
	require.NoError(t, err)
	_, second := claimA()
	_, err = b.client.CompleteClaimedStep(ctx, step, second, json.RawMessage(`{"a": 1}`))
	require.NoError(t, err)
	require.True(t, recorded(step, second, true, `{"a":1}`, ""), "the same document, spaced otherwise")
	require.False(t, recorded(step, second, true, `{"a": 2}`, ""), "another result")
	require.False(t, recorded(step, first, true, `{"a": 1}`, ""), "the first attempt ended otherwise")
}
