package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/test/testdb"
)

// demoRunResult is one in-process run of the CLI.
type demoRunResult struct {
	stdout, stderr string
	code           int
}

func demoCLI(t *testing.T, args ...string) demoRunResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return demoRunResult{stdout: out.String(), stderr: errb.String(), code: code}
}

// demoTestDatabase names a demo database for one test (parallel tests must
// not share one) and drops it when the test ends.
func demoTestDatabase(t *testing.T, serverURL string) string {
	t.Helper()
	var b [4]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	name := "stepevents_demo_t" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), serverURL)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		_, err = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		require.NoError(t, err)
	})
	return name
}

// demoPool connects to the demo's database on serverURL's server.
func demoPool(t *testing.T, serverURL, name string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(serverURL)
	require.NoError(t, err)
	cfg.ConnConfig.Database = name
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func demoCount(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// TestDemoTemplateIsTheFixture keeps the demo's embedded template equal to
// the seed fixture it copies.
func TestDemoTemplateIsTheFixture(t *testing.T) {
	t.Parallel()
	fixture, err := os.ReadFile(goodTemplate)
	require.NoError(t, err)
	require.Equal(t, string(fixture), string(demoTemplate),
		"cmd/stepevents/demo_template.yaml must be a copy of %s", goodTemplate)
}

// TestDemoJSON runs the demo with 30 orders and checks its summary against
// plain SQL on the demo's database.
func TestDemoJSON(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	name := demoTestDatabase(t, url)
	r := demoCLI(t, "--database-url", url, "demo", "--orders", "30", "--workers", "4", "--demo-database", name,
		"--json")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)

	var sum demoSummary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)
	pool := demoPool(t, url, name)

	require.Equal(t, 30, sum.Orders)
	require.True(t, sum.CrossCheck.OK, sum.CrossCheck.Detail)
	rows := demoCount(t, pool, `SELECT count(*) FROM `+demoQueue)
	require.Positive(t, rows)
	require.Equal(t, rows, sum.CrossCheck.QueueRows)
	require.Equal(t, rows, sum.CrossCheck.Reported)
	require.Equal(t, rows, demoCount(t, pool, `SELECT count(DISTINCT message->>'event_id') FROM `+demoQueue))

	// Tasks by final state, as SQL sees them, and as the plans predict.
	tasks, err := demoCountBy(context.Background(), pool, `SELECT state, count(*) FROM stepevents.tasks GROUP BY 1`)
	require.NoError(t, err)
	require.Equal(t, tasks, sum.Tasks)
	require.Equal(t, sum.Plans["success"]+sum.Plans["retried"], tasks["complete"])
	require.Equal(t, sum.Plans["declined"]+sum.Plans["out_of_stock"], tasks["error"])
	require.Equal(t, 30, tasks["complete"]+tasks["error"])
	require.Positive(t, sum.Plans["retried"], "the seeded mix has retried orders")
	require.Positive(t, sum.Plans["declined"]+sum.Plans["out_of_stock"], "the seeded mix has permanent failures")

	// Every attempt started was claimed by the runner and ended once.
	started := demoCount(t, pool, `SELECT count(*) FROM stepevents.workflow_step_transitions WHERE to_state = 'in_progress'`)
	require.Equal(t, started, sum.Attempts)
	require.Equal(t, uint64(started), sum.Runner.Claimed)
	require.Equal(t, sum.Runner.Claimed, sum.Runner.Completed+sum.Runner.Failed)
	require.Zero(t, demoCount(t, pool, `SELECT count(*) FROM stepevents.workflow_steps WHERE state = 'in_progress'`))

	// Events by name: queued counts equal SQL; retries published their events.
	byName := map[string]demoEventCount{}
	for _, e := range sum.Events {
		byName[e.Name] = e
		if e.Queued != nil {
			require.Equal(t, demoCount(t, pool, `SELECT count(*) FROM `+demoQueue+` WHERE message->>'event_name' = $1`, e.Name),
				*e.Queued, e.Name)
			require.Equal(t, e.Published, *e.Queued, e.Name)
		}
	}
	require.Equal(t, "broadcast", byName["payment.processed"].Mode)
	require.Equal(t, "fast", byName["order.validated"].Mode)
	require.Equal(t, 30, byName["order.validated"].Published)
	require.Equal(t, tasks["complete"], byName["notification.sent"].Published)
	require.Zero(t, sum.Router.RoutingErrors)
	require.Zero(t, sum.CompletionErrors)
	require.Zero(t, sum.Bus.Dropped)
}

// TestDemoText runs the demo twice on the same demo database: each run
// starts from a fresh database and prints the cross-check line.
func TestDemoText(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	name := demoTestDatabase(t, url)
	line := regexp.MustCompile(`(?m)^cross-check: OK: (\d+) durable events published by the runner's completions, (\d+) rows in pgmq\.q_domain_events_domain_events`)
	for range 2 {
		r := demoCLI(t, "--database-url", url, "demo", "--orders", "12", "--workers", "2", "--demo-database", name)
		require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
		m := line.FindStringSubmatch(r.stdout)
		require.NotNil(t, m, r.stdout)
		require.Equal(t, m[1], m[2])
		require.Contains(t, r.stdout, "TASK STATE (SQL)")
		require.Contains(t, r.stderr, "orders 100%")
		pool := demoPool(t, url, name)
		require.Equal(t, 12, demoCount(t, pool, `SELECT count(*) FROM stepevents.tasks`), "a fresh database each run")
		require.Equal(t, m[2], strconv.Itoa(demoCount(t, pool, `SELECT count(*) FROM `+demoQueue)))
		pool.Close()
	}
}

// TestDemoRefusesForeignDatabase: the demo never drops a database it did
// not create.
func TestDemoRefusesForeignDatabase(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	name := demoTestDatabase(t, url)
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), "CREATE DATABASE "+name)
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))

	r := demoCLI(t, "--database-url", url, "demo", "--orders", "3", "--demo-database", name)
	require.Equal(t, 1, r.code)
	require.Equal(t, "stepevents: database "+name+" exists and was not created by stepevents demo: "+
		"choose another --demo-database, or drop it yourself\n", r.stderr)
	pool := demoPool(t, url, name)
	require.Zero(t, demoCount(t, pool, `SELECT count(*) FROM pg_namespace WHERE nspname = 'stepevents'`),
		"nothing was created in it")
}

func TestDemoBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--orders", "0"}, 2, "stepevents: --orders must be between 1 and 100000, got 0\n"},
		{[]string{"--workers", "0"}, 2, "stepevents: --workers must be between 1 and 256, got 0\n"},
		{[]string{"--demo-database", "Bad-Name"}, 2,
			"stepevents: --demo-database \"Bad-Name\" is not a plain lower-case name (letters, digits, _)\n"},
		{[]string{"--timeout", "-1s"}, 2, "stepevents: --timeout must be a positive duration like 5m, got -1s\n"},
		{[]string{"--orders", "many"}, 2, "stepevents: invalid argument \"many\" for \"--orders\" flag: "},
	} {
		r := demoCLI(t, append([]string{"--database-url", "postgres://nobody@127.0.0.1:1/x", "demo"}, tc.args...)...)
		require.Equal(t, tc.code, r.code, "%v: %s", tc.args, r.stderr)
		require.True(t, strings.HasPrefix(r.stderr, tc.msg), "%v: %q", tc.args, r.stderr)
		require.True(t, strings.HasSuffix(r.stderr, "\nRun 'stepevents --help' for usage.\n"), r.stderr)
	}
	r := demoCLI(t, "--database-url", "postgres://nobody@127.0.0.1:1/x", "demo")
	require.Equal(t, 1, r.code)
	require.Equal(t, "stepevents: no database reachable at --database-url: connection refused\n", r.stderr)
}
