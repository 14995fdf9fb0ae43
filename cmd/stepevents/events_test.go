package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/test/testdb"
)

const inventoryStep = "domain_events_update_inventory"

// seedEventQueue runs an order's first three steps through the CLI, which
// queues two durable events: payment.processed, then inventory.updated.
func seedEventQueue(t *testing.T) string {
	t.Helper()
	url, id := newTask(t)
	st := showTask(t, url, id)
	for _, s := range []struct{ name, result string }{
		{validateStep, `{"order_id": "o-1", "validation_timestamp": "2026-01-02T03:04:05Z"}`},
		{paymentStep, `{"amount": 42}`},
		{inventoryStep, `{"order_id": "o-1", "items_reserved": 2}`},
	} {
		step := stepID(t, st, s.name)
		ok(t, url, "step", "start", step)
		ok(t, url, "step", "complete", step, "--result", s.result)
	}
	return url
}

func listQueuedEvents(t *testing.T, url string) []queuedJSON {
	t.Helper()
	var rows []queuedJSON
	require.NoError(t, json.Unmarshal([]byte(ok(t, url, "events", "list", "domain_events", "--json")), &rows))
	return rows
}

func countTableRows(t *testing.T, url, table string) int {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n))
	return n
}

func TestEventsListAndConsume(t *testing.T) {
	t.Parallel()
	url := seedEventQueue(t)

	out := ok(t, url, "events", "list", "domain_events")
	require.Regexp(t, `MSG_ID\s+EVENT_NAME\s+EVENT_ID\s+READ_CT\s+ENQUEUED_AT`, out)
	require.Regexp(t, `(?m)^\d+\s+payment\.processed\s+[0-9a-f-]{36}\s+0\s+\S+\n\d+\s+inventory\.updated\s`, out)
	rows := listQueuedEvents(t, url)
	require.Len(t, rows, 2)
	require.Equal(t, "payment.processed", rows[0].EventName)
	require.Equal(t, "inventory.updated", rows[1].EventName)
	require.Less(t, rows[0].MsgID, rows[1].MsgID)
	require.Contains(t, ok(t, url, "events", "list", "domain_events", "--limit", "1"), "(1 of 2 queued events shown")
	require.Equal(t, rows, listQueuedEvents(t, url), "listing consumes nothing and counts no read")

	// --max 1 consumes (and reads) exactly one event, the oldest.
	r := cli(t, "--database-url", url, "events", "consume", "domain_events", "--max", "1")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `^msg `+fmtInt64(rows[0].MsgID)+`  payment\.processed  `+rows[0].EventID+`  task=[0-9a-f-]{36}  step=`+paymentStep+"\n$", r.stdout)
	require.Equal(t, "consumed 1 event(s) from domain_events_domain_events (deleted)\n", r.stderr)
	left := listQueuedEvents(t, url)
	require.Len(t, left, 1)
	require.Equal(t, rows[1], left[0], "the other event was not read")

	// --archive --json: one JSON line per event, the row moves to the archive.
	r = cli(t, "--database-url", url, "events", "consume", "domain_events", "--archive", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 1)
	var line struct {
		MsgID  int64        `json:"msg_id"`
		ReadCt int          `json:"read_ct"`
		Event  events.Event `json:"event"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &line))
	require.Equal(t, rows[1].MsgID, line.MsgID)
	require.Equal(t, 1, line.ReadCt)
	require.Equal(t, "inventory.updated", line.Event.EventName)
	require.Equal(t, rows[1].EventID, line.Event.EventID.String())
	require.Contains(t, r.stderr, "consumed 1 event(s) from domain_events_domain_events (archived)")
	require.Equal(t, 1, countTableRows(t, url, "pgmq.a_domain_events_domain_events"))
	require.Equal(t, 0, countTableRows(t, url, "pgmq.q_domain_events_domain_events"))

	// An empty queue is not an error.
	r = cli(t, "--database-url", url, "events", "consume", "domain_events")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stdout)
	require.Contains(t, r.stderr, "consumed 0 event(s)")
	require.Equal(t, "no events queued in domain_events_domain_events\n", ok(t, url, "events", "list", "domain_events"))
	require.Equal(t, "[]\n", ok(t, url, "events", "list", "domain_events", "--json"))
}

func fmtInt64(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestEventsErrors(t *testing.T) {
	t.Parallel()
	url := seedEventQueue(t)
	for _, cmd := range []string{"list", "consume"} {
		r := userErr(t, url, "events", cmd, "nope")
		require.Equal(t, "stepevents: namespace \"nope\" has no event queue (\"pgmq\".\"q_nope_domain_events\"): "+
			"apply one of its templates first with `stepevents template apply FILE`\n", r.stderr)

		r = userErr(t, url, "events", cmd, "Domain-Events")
		require.Contains(t, r.stderr, "stepevents: invalid namespace: namespace \"Domain-Events\"")

		r = userErr(t, "postgres://nobody@127.0.0.1:1/x", "events", cmd, "domain_events")
		require.Contains(t, r.stderr, "no database reachable at 127.0.0.1:1/x")
	}
	for _, args := range [][]string{
		{"events"},
		{"events", "list"},
		{"events", "list", "domain_events", "--limit", "0"},
		{"events", "consume", "domain_events", "--max", "-1"},
		{"events", "consume", "domain_events", "--vt", "10ms"},
		{"events", "consume", "domain_events", "--vt", "soon"},
		{"listen", "Payment.*"},
		{"listen", "payment.*", "pay*"},
	} {
		r := cli(t, append([]string{"--database-url", url}, args...)...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		require.True(t, strings.HasPrefix(r.stderr, "stepevents: "), r.stderr)
	}
	r := cli(t, "--database-url", url, "listen", "pay*")
	require.Contains(t, r.stderr, `stepevents: invalid subscription pattern "pay*": segment "pay*" mixes a wildcard`)
	require.Len(t, listQueuedEvents(t, url), 2, "nothing was consumed")
}

// listenProcess is a running `stepevents listen` with its output as lines.
type listenProcess struct {
	cmd    *exec.Cmd
	stdout chan string
	stderr chan string
}

func startListenProcess(t *testing.T, url string, args ...string) *listenProcess {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"--database-url", url, "listen"}, args...)...)
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	outPipe, err := cmd.StdoutPipe()
	require.NoError(t, err)
	errPipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &listenProcess{cmd: cmd, stdout: lineChannel(outPipe), stderr: lineChannel(errPipe)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return p
}

func lineChannel(r io.Reader) chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// next returns the next line from ch, failing after the deadline.
func nextLine(t *testing.T, ch chan string, what string) string {
	t.Helper()
	select {
	case l, open := <-ch:
		require.True(t, open, "output ended while waiting for %s", what)
		return l
	case <-time.After(15 * time.Second):
		t.Fatalf("no %s within 15s", what)
		return ""
	}
}

// stop sends SIGINT and returns the exit status and the rest of stderr.
func (p *listenProcess) stop(t *testing.T) (int, string) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	var rest []string
	for l := range p.stderr {
		rest = append(rest, l)
	}
	for range p.stdout {
	}
	err := p.cmd.Wait()
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		return ee.ExitCode(), strings.Join(rest, "\n")
	}
	return 0, strings.Join(rest, "\n")
}

// publisher completes a task's steps with an events.Client, so fast events
// are sent the way an application sends them.
func fastPublisher(t *testing.T, url string) *events.Client {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	client, err := events.NewClient(ctx, pool, &events.Config{Publishers: publishers.All()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close(context.Background())) })
	return client
}

func completeViaClient(t *testing.T, url string, client *events.Client, stepUUID, result string) *events.Completion {
	t.Helper()
	ok(t, url, "step", "start", stepUUID)
	id, err := parseUUID("step", stepUUID)
	require.NoError(t, err)
	comp, err := client.CompleteStep(context.Background(), id, json.RawMessage(result))
	require.NoError(t, err)
	return comp
}

func TestListen(t *testing.T) {
	t.Parallel()
	url, id := newTask(t)
	client := fastPublisher(t, url)
	st := showTask(t, url, id)

	p := startListenProcess(t, url, "order.*")
	require.Equal(t, `listening on channel stepevents_events for "order.*" (Ctrl-C to stop)`, nextLine(t, p.stderr, "listening line"))

	comp := completeViaClient(t, url, client, stepID(t, st, validateStep),
		`{"order_id": "o-1", "validation_timestamp": "2026-01-02T03:04:05Z"}`)
	require.Len(t, comp.Published, 1)
	ev := comp.Published[0]
	require.Equal(t, "order.validated  "+ev.EventID.String()+"  task="+id+"  step="+validateStep,
		nextLine(t, p.stdout, "order.validated line"))

	// A lost connection is reported as a gap once LISTEN is back.
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	var terminated int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'listen %'`).Scan(&terminated))
	require.Equal(t, 1, terminated, "the listen process's LISTEN session")
	require.Regexp(t, `^gap: reconnected to channel stepevents_events after \S+ \(reconnect 1\); fast events sent meanwhile are lost$`,
		nextLine(t, p.stdout, "gap line"))

	code, rest := p.stop(t)
	require.Equal(t, 0, code, rest)
	require.Contains(t, rest, "stopped: 1 event(s) printed")
}

func TestListenJSONFiltersByPattern(t *testing.T) {
	t.Parallel()
	url, id := newTask(t)
	client := fastPublisher(t, url)
	st := showTask(t, url, id)

	p := startListenProcess(t, url, "--json", "payment.>", "notification.sent")
	require.Contains(t, nextLine(t, p.stderr, "listening line"), `for "payment.>", "notification.sent"`)

	// order.validated does not match; payment.processed (broadcast) does.
	completeViaClient(t, url, client, stepID(t, st, validateStep), `{"order_id": "o-1", "validation_timestamp": "2026-01-02T03:04:05Z"}`)
	comp := completeViaClient(t, url, client, stepID(t, st, paymentStep), `{"amount": 42}`)
	var line listenedJSON
	require.NoError(t, json.Unmarshal([]byte(nextLine(t, p.stdout, "payment.processed line")), &line),
		"the first line printed is payment.processed: order.validated, sent before it, was filtered out")
	require.NotNil(t, line.Event)
	require.Nil(t, line.Gap)
	require.Equal(t, "payment.processed", line.Event.EventName)
	require.Equal(t, comp.Published[0].EventID, line.Event.EventID)
	require.Equal(t, paymentStep, line.Event.Metadata.StepName)

	code, rest := p.stop(t)
	require.Equal(t, 0, code, rest)
	require.Contains(t, rest, "stopped: 1 event(s) printed")
}

// When printing stalls (stdout not read) until the lease of the events read
// but not yet printed runs out, consume stops: those stay queued, and the
// summary and the exit status say so.
func TestEventsConsumeLeaseExpired(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	ok(t, url, "template", "apply", goodTemplate)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	// Ten events of 20 kB: three JSON lines fill a 64 kB pipe, and the
	// fourth print blocks while nobody reads.
	_, err = pool.Exec(ctx, `SELECT pgmq.send_batch('domain_events_domain_events', array_agg(jsonb_build_object(
		'event_id', gen_random_uuid(), 'event_name', 'order.shipped', 'event_version', '1.0',
		'payload', jsonb_build_object('payload', jsonb_build_object('blob', repeat('x', 20000))))))
		FROM generate_series(1, 10)`)
	require.NoError(t, err)

	cmd := exec.Command(binary(t), "--database-url", url, "events", "consume", "domain_events", "--json", "--vt", "1s")
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	// The waiting events' leases are extended once, to 1.5 s after the
	// read: stall past that.
	time.Sleep(3 * time.Second)
	out, err := io.ReadAll(stdout)
	require.NoError(t, err)
	err = cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "stderr: %s", stderr.String())
	require.Equal(t, 1, ee.ExitCode(), stderr.String())

	m := regexp.MustCompile(`consumed (\d+) event\(s\) from domain_events_domain_events \(deleted\); (\d+) left in the queue \(lease expired\)\n` +
		`stepevents: (\d+) event\(s\) were not printed before their lease \(--vt\) expired and stay queued\n$`).
		FindStringSubmatch(stderr.String())
	require.NotNil(t, m, stderr.String())
	consumed, _ := strconv.Atoi(m[1])
	expired, _ := strconv.Atoi(m[2])
	require.Equal(t, m[2], m[3])
	require.Positive(t, expired)
	require.Equal(t, 10, consumed+expired, stderr.String())
	require.Equal(t, consumed, strings.Count(string(out), "\n"), "one line per consumed event")
	require.Equal(t, expired, countTableRows(t, url, "pgmq.q_domain_events_domain_events"))
}
