package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/test/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

const (
	goodTemplate = "../../test/templates/good/domain_event_publishing.yaml"
	badTemplate  = "../../test/templates/bad/unknown_condition.yaml"
	orderContext = `{"order_id": "0192f0c4-1b2c-7d3e-8f40-123456789abc", "customer_id": "c-1", "amount": 42}`

	validateStep = "domain_events_validate_order"
	paymentStep  = "domain_events_process_payment"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the CLI once per test run. It is built in a scratch
// directory, then renamed over one fixed path per checkout, so repeated or concurrent runs
// leave a single file behind and never run a half-written binary.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		// One directory per checkout: test runs of two checkouts at once
		// never run each other's binary.
		wd, err := os.Getwd()
		if err != nil {
			buildErr = err
			return
		}
		sum := sha256.Sum256([]byte(wd))
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("stepevents-cli-test-%x", sum[:8]))
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		scratch, err := os.MkdirTemp(dir, "build-")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(scratch)
		built := filepath.Join(scratch, "stepevents")
		if out, err := exec.Command("go", "build", "-o", built, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binPath = filepath.Join(dir, "stepevents")
		buildErr = os.Rename(built, binPath)
	})
	require.NoError(t, buildErr)
	return binPath
}

type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary with args; DATABASE_URL is cleared so only flags count.
func cli(t *testing.T, args ...string) result {
	t.Helper()
	return cliEnv(t, "", args...)
}

// cliEnv runs the binary with args and DATABASE_URL set to databaseURL.
func cliEnv(t *testing.T, databaseURL string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// ok runs the CLI against url and requires success.
func ok(t *testing.T, url string, args ...string) string {
	t.Helper()
	r := cli(t, append([]string{"--database-url", url}, args...)...)
	require.Equal(t, 0, r.code, "stepevents %v\nstdout: %s\nstderr: %s", args, r.stdout, r.stderr)
	return r.stdout
}

// userErr runs the CLI against url and requires exit 1 with one stderr line.
func userErr(t *testing.T, url string, args ...string) result {
	t.Helper()
	r := cli(t, append([]string{"--database-url", url}, args...)...)
	require.Equal(t, 1, r.code, "stepevents %v\nstdout: %s\nstderr: %s", args, r.stdout, r.stderr)
	require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one stderr line: %q", r.stderr)
	require.True(t, strings.HasPrefix(r.stderr, "stepevents: "), r.stderr)
	return r
}

// usageErr runs the CLI against url and requires exit 2 (a usage error) with
// a first stderr line naming what is wrong, then the pointer to --help.
func usageErr(t *testing.T, url string, args ...string) result {
	t.Helper()
	r := cli(t, append([]string{"--database-url", url}, args...)...)
	require.Equal(t, 2, r.code, "stepevents %v\nstdout: %s\nstderr: %s", args, r.stdout, r.stderr)
	require.Regexp(t, `^stepevents: .+\nRun 'stepevents --help' for usage\.\n$`, r.stderr)
	require.Empty(t, r.stdout)
	return r
}

type shownTask struct {
	TaskUUID string `json:"task_uuid"`
	State    string `json:"state"`
	Steps    []struct {
		StepUUID    string `json:"step_uuid"`
		Name        string `json:"name"`
		State       string `json:"state"`
		Attempts    int    `json:"attempts"`
		MaxAttempts int    `json:"max_attempts"`
		Ready       bool   `json:"ready"`
	} `json:"steps"`
}

func showTask(t *testing.T, url, taskID string) shownTask {
	t.Helper()
	var st shownTask
	require.NoError(t, json.Unmarshal([]byte(ok(t, url, "task", "show", "--json", taskID)), &st))
	return st
}

func stepID(t *testing.T, st shownTask, name string) string {
	t.Helper()
	for _, s := range st.Steps {
		if s.Name == name {
			return s.StepUUID
		}
	}
	t.Fatalf("no step %s in %+v", name, st)
	return ""
}

// newTask applies the good template and creates a task; it returns the URL
// and the task uuid.
func newTask(t *testing.T) (string, string) {
	t.Helper()
	url := testdb.NewURL(t)
	ok(t, url, "template", "apply", goodTemplate)
	id := strings.TrimSpace(ok(t, url, "task", "create", "domain_events/domain_event_publishing", "--context", orderContext))
	return url, id
}

func TestTemplateValidateGood(t *testing.T) {
	t.Parallel()
	r := cli(t, "template", "validate", goodTemplate)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, goodTemplate+": ok")
	require.Empty(t, r.stderr)
}

func TestTemplateValidateBad(t *testing.T) {
	t.Parallel()
	r := cli(t, "template", "validate", goodTemplate, badTemplate)
	require.Equal(t, 1, r.code)
	require.Regexp(t, `(?m)^`+regexp.QuoteMeta(badTemplate)+`:\d+:\d+: steps\[0\]\.publishes_events\[0\]\.condition: unknown condition "on_success"`, r.stdout)
	require.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	require.Contains(t, r.stderr, "1 problem(s) in 1 of 2 template file(s)")
}

func TestTemplateValidateMissingFile(t *testing.T) {
	t.Parallel()
	r := cli(t, "template", "validate", "no/such/file.yaml")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stdout, "no/such/file.yaml")
}

func TestTemplateApplyAndList(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	require.Contains(t, ok(t, url, "template", "apply", goodTemplate), "applied domain_events/domain_event_publishing@1.0.0")
	// idempotent
	ok(t, url, "template", "apply", goodTemplate)
	out := ok(t, url, "template", "list")
	require.Regexp(t, `domain_events\s+domain_event_publishing\s+1\.0\.0\s+4\s+6`, out)

	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(ok(t, url, "template", "list", "--json")), &rows))
	require.Len(t, rows, 1)
	require.Equal(t, "domain_event_publishing", rows[0]["name"])

	// a bad file is refused before the database is touched
	r := userErr(t, url, "template", "apply", badTemplate)
	require.Contains(t, r.stdout, "unknown condition")
}

// writeTemplate writes a copy of the good template with each old string
// replaced by its new one, and returns its path.
func writeTemplate(t *testing.T, name string, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile(goodTemplate)
	require.NoError(t, err)
	s := string(b)
	for i := 0; i < len(replace); i += 2 {
		require.Contains(t, s, replace[i])
		s = strings.Replace(s, replace[i], replace[i+1], 1)
	}
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(s), 0o644))
	return path
}

// TestTemplateApplyAllOrNothing: apply stores every file or none. The
// second file is valid on its own but the database refuses it (its version
// is already applied with another definition), so the first, new, template
// must not be stored either.
func TestTemplateApplyAllOrNothing(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	ok(t, url, "template", "apply", goodTemplate)
	first := writeTemplate(t, "first.yaml", "name: domain_event_publishing", "name: all_or_nothing")
	second := writeTemplate(t, "second.yaml", "description: Order fulfilment", "description: Changed order fulfilment")

	r := userErr(t, url, "template", "apply", first, second)
	out := ok(t, url, "template", "list")
	require.NotContains(t, out, "all_or_nothing", "the first file must not be stored")
	rc := userErr(t, url, "task", "create", "domain_events/all_or_nothing", "--context", orderContext)
	require.Contains(t, rc.stderr, "not found")

	require.Contains(t, r.stderr, "template domain_events/domain_event_publishing@1.0.0 ("+second+")")
	require.Contains(t, r.stderr, "already applied with a different definition")
	require.Contains(t, r.stderr, "none of the 2 files was applied")
	require.NotContains(t, r.stdout, "applied ")

	// Both valid: both stored, reported after the commit.
	third := writeTemplate(t, "third.yaml", "name: domain_event_publishing", "name: all_or_nothing",
		"version: 1.0.0", "version: 1.1.0")
	out = ok(t, url, "template", "apply", first, third)
	require.Contains(t, out, "applied domain_events/all_or_nothing@1.0.0 from "+first)
	require.Contains(t, out, "applied domain_events/all_or_nothing@1.1.0 from "+third)
}

// TestTemplateApplyInAnyOrderDoesNotDeadlock: each template's lock, and its
// namespace queue's lock (pgmq.create's), are held to the end of apply's one
// transaction. Two applies must not wait on each other: not the same files
// in opposite orders, and not {b, d} against {d}, where the first could hold
// the queue lock (after applying b) while it waits for d's lock, held by
// the second, which waits for the queue lock.
func TestTemplateApplyInAnyOrderDoesNotDeadlock(t *testing.T) {
	t.Parallel()
	b := writeTemplate(t, "b.yaml", "name: domain_event_publishing", "name: order_b")
	d := writeTemplate(t, "d.yaml", "name: domain_event_publishing", "name: order_d")
	for _, applies := range [][][]string{{{b, d}, {d, b}}, {{d}, {b, d}}} {
		url := testdb.NewURL(t)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer conn.Close(ctx)
		// Hold order_d's lock so that both applies queue up behind it, in
		// the order they start.
		const key = `hashtext('stepevents.template:domain_events/order_d@1.0.0')`
		_, err = conn.Exec(ctx, `SELECT pg_advisory_lock(`+key+`)`)
		require.NoError(t, err)
		waiting := func(n int) func() bool {
			return func() bool {
				var w int
				require.NoError(t, conn.QueryRow(ctx,
					`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&w))
				return w == n
			}
		}
		results := make(chan result, len(applies))
		for i, files := range applies {
			go func() { results <- cliEnv(t, url, append([]string{"template", "apply"}, files...)...) }()
			require.Eventually(t, waiting(i+1), 20*time.Second, 10*time.Millisecond, "apply %v waits", files)
		}
		_, err = conn.Exec(ctx, `SELECT pg_advisory_unlock(`+key+`)`)
		require.NoError(t, err)
		for range applies {
			r := <-results
			require.Equal(t, 0, r.code, "%v: %s", applies, r.stderr)
		}
	}
}

func TestTaskCreateAndShow(t *testing.T) {
	t.Parallel()
	url, id := newTask(t)
	out := ok(t, url, "task", "show", id)
	require.Contains(t, out, "task "+id+" (domain_events/domain_event_publishing@1.0.0): ")
	require.Regexp(t, validateStep+`\s+pending\s+0/3\s+true\s+-`, out)
	require.Regexp(t, paymentStep+`\s+pending\s+0/3\s+false\s+-`, out)

	st := showTask(t, url, id)
	require.Equal(t, id, st.TaskUUID)
	require.Len(t, st.Steps, 4)

	r := userErr(t, url, "task", "create", "domain_events/domain_event_publishing", "--context", `{"order_id": "x"}`)
	require.Contains(t, r.stderr, "context does not match input_schema")
	r = userErr(t, url, "task", "create", "domain_events/nope", "--context", orderContext)
	require.Equal(t, "stepevents: template domain_events/nope@latest not found\n", r.stderr)
	r = userErr(t, url, "task", "create", "nonamespace")
	require.Contains(t, r.stderr, "NAMESPACE/NAME")
	r = userErr(t, url, "task", "show", "0192f0c4-1b2c-7d3e-8f40-123456789abc")
	require.Equal(t, "stepevents: task 0192f0c4-1b2c-7d3e-8f40-123456789abc not found\n", r.stderr)
}

func TestStepStartComplete(t *testing.T) {
	t.Parallel()
	url, id := newTask(t)
	step := stepID(t, showTask(t, url, id), validateStep)
	require.Contains(t, ok(t, url, "step", "start", step), "in_progress")
	out := ok(t, url, "step", "complete", step, "--result",
		`{"order_id": "0192f0c4-1b2c-7d3e-8f40-123456789abc", "validation_timestamp": "2026-01-02T03:04:05Z"}`)
	require.Contains(t, out, "order.validated")
	require.Regexp(t, `order\.validated\s+fast\s+[0-9a-f-]{36}`, out)

	st := showTask(t, url, id)
	require.Equal(t, "complete", st.Steps[0].State)
	require.True(t, st.Steps[1].Ready, "payment is ready once validation is complete")

	// the next step, with --json
	pay := stepID(t, st, paymentStep)
	ok(t, url, "step", "start", pay)
	var comp completionJSON
	require.NoError(t, json.Unmarshal([]byte(ok(t, url, "step", "complete", "--json", pay, "--result", `{"amount": 42}`)), &comp))
	require.True(t, comp.Succeeded)
	require.Len(t, comp.Published, 1)
	require.Equal(t, "payment.processed", comp.Published[0].Name)
	require.Equal(t, "broadcast", comp.Published[0].Mode)
	require.NotEmpty(t, comp.Published[0].Queue)
	require.NotZero(t, comp.Published[0].MsgID)
	names := map[string]string{}
	for _, s := range comp.Skipped {
		names[s.Name] = s.Reason
	}
	require.Equal(t, "condition_not_met", names["payment.failed.permanent"])
}

// A database whose default isolation is REPEATABLE READ (here: set in the
// URL) still works through the CLI: its connections default to READ
// COMMITTED, which step operations need.
func TestStepCommandsUnderStricterDefaultIsolation(t *testing.T) {
	t.Parallel()
	url, id := newTask(t)
	strict := url + "&default_transaction_isolation=repeatable%20read"
	if !strings.Contains(url, "?") {
		strict = url + "?default_transaction_isolation=repeatable%20read"
	}
	step := stepID(t, showTask(t, strict, id), validateStep)
	require.Contains(t, ok(t, strict, "step", "start", step), "in_progress")
	ok(t, strict, "step", "complete", step, "--result",
		`{"order_id": "0192f0c4-1b2c-7d3e-8f40-123456789abc", "validation_timestamp": "2026-01-02T03:04:05Z"}`)
	require.Equal(t, "complete", showTask(t, url, id).Steps[0].State)
}

func TestStepFailPermanent(t *testing.T) {
	t.Parallel()
	url, id := newTask(t)
	st := showTask(t, url, id)
	v := stepID(t, st, validateStep)
	ok(t, url, "step", "start", v)
	ok(t, url, "step", "complete", v, "--result", `{"order_id": "o", "validation_timestamp": "2026-01-02T03:04:05Z"}`)
	pay := stepID(t, st, paymentStep)
	ok(t, url, "step", "start", pay)
	out := ok(t, url, "step", "fail", pay, "--error", "card declined", "--code", "card_declined", "--permanent")
	require.Regexp(t, `payment\.failed\.permanent\s+durable\s+[0-9a-f-]{36}\s+\S+\s+\d+`, out)
	require.Contains(t, out, "skipped:")
	require.Contains(t, out, "payment.processed")

	st = showTask(t, url, id)
	require.Equal(t, "error", st.Steps[1].State)

	// reset gives it fresh attempts, resolve satisfies its dependents
	require.Contains(t, ok(t, url, "step", "reset", pay, "--note", "card replaced"), "pending, attempts 0/3")
	require.Contains(t, ok(t, url, "step", "resolve", pay, "--note", "paid by phone"), "resolved_manually")
	st = showTask(t, url, id)
	require.True(t, st.Steps[2].Ready)
}

// TestStepJSONHasNoReady: step start, resolve and reset --json print the
// step's state without "ready", which only task show computes; task show
// --json keeps it, false included.
func TestStepJSONHasNoReady(t *testing.T) {
	t.Parallel()
	url, id := newTask(t)
	st := showTask(t, url, id)
	v := stepID(t, st, validateStep)
	fields := func(out string) map[string]any {
		t.Helper()
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &m), out)
		return m
	}

	m := fields(ok(t, url, "step", "start", "--json", v))
	require.Equal(t, "in_progress", m["state"])
	require.NotContains(t, m, "ready", "step start --json")
	ok(t, url, "step", "fail", v, "--error", "bad order", "--permanent")
	m = fields(ok(t, url, "step", "reset", "--json", v, "--note", "fixed"))
	require.Equal(t, "pending", m["state"])
	require.NotContains(t, m, "ready", "step reset --json")
	m = fields(ok(t, url, "step", "resolve", "--json", v, "--note", "done by hand"))
	require.Equal(t, "resolved_manually", m["state"])
	require.NotContains(t, m, "ready", "step resolve --json")
	for _, k := range []string{"step_uuid", "name", "attempts", "max_attempts", "next_retry_at"} {
		require.Contains(t, m, k)
	}

	var shown struct {
		Steps []map[string]any `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok(t, url, "task", "show", "--json", id)), &shown))
	require.Equal(t, false, shown.Steps[0]["ready"], "resolved: not ready for execution")
	require.Equal(t, true, shown.Steps[1]["ready"], "its dependent is ready")
}

func TestStepFailRetryable(t *testing.T) {
	t.Parallel()
	url, id := newTask(t)
	v := stepID(t, showTask(t, url, id), validateStep)
	ok(t, url, "step", "start", v)
	before := time.Now()
	out := ok(t, url, "step", "fail", v, "--error", "timeout", "--retry-after", "1h")
	require.Contains(t, out, "waiting_for_retry")
	st := showTask(t, url, id)
	require.Equal(t, "waiting_for_retry", st.Steps[0].State)
	require.False(t, st.Steps[0].Ready)
	// --retry-after is capped at the step's max_backoff_ms (10s in the fixture), as its help says.
	var shown struct {
		Steps []struct {
			NextRetryAt *time.Time `json:"next_retry_at"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok(t, url, "task", "show", "--json", id)), &shown))
	require.NotNil(t, shown.Steps[0].NextRetryAt)
	require.WithinDuration(t, before.Add(10*time.Second), *shown.Steps[0].NextRetryAt, 5*time.Second)
	help := ok(t, url, "step", "fail", "--help")
	require.Contains(t, strings.Join(strings.Fields(help), " "), "capped at the step's max_backoff_ms")
	r := userErr(t, url, "step", "start", v)
	require.Contains(t, r.stderr, "is not ready")
	r = usageErr(t, url, "step", "fail", v, "--error", "x", "--retry-after", "soon")
	require.Contains(t, r.stderr, `invalid --retry-after "soon"`)
	r = usageErr(t, url, "step", "fail", v)
	require.Contains(t, r.stderr, "--error is required")
}

func TestStepErrors(t *testing.T) {
	t.Parallel()
	url, id := newTask(t)
	v := stepID(t, showTask(t, url, id), validateStep)

	const unknown = "0192f0c4-1b2c-7d3e-8f40-123456789abc"
	r := userErr(t, url, "step", "start", unknown)
	require.Equal(t, "stepevents: step "+unknown+" not found\n", r.stderr)
	r = userErr(t, url, "step", "complete", unknown, "--result", `{}`)
	require.Equal(t, "stepevents: step "+unknown+" not found\n", r.stderr)

	r = userErr(t, url, "step", "start", "not-a-uuid")
	require.Contains(t, r.stderr, `invalid step uuid "not-a-uuid"`)

	// completing a pending step is illegal and changes nothing
	before := showTask(t, url, id)
	r = userErr(t, url, "step", "complete", v, "--result", `{"order_id": "o"}`)
	require.Contains(t, r.stderr, "step "+v)
	require.Contains(t, r.stderr, "illegal step transition pending -> complete")
	require.Empty(t, r.stdout)
	require.Equal(t, before, showTask(t, url, id))
	require.Equal(t, "pending", before.Steps[0].State)

	// malformed --result is refused before anything runs
	ok(t, url, "step", "start", v)
	r = usageErr(t, url, "step", "complete", v, "--result", `{"order_id": `)
	require.Contains(t, r.stderr, "--result is not valid JSON")
	require.Equal(t, "in_progress", showTask(t, url, id).Steps[0].State)
}

func TestUnreachableDatabase(t *testing.T) {
	t.Parallel()
	const url = "postgres://nobody@127.0.0.1:1/x"
	for _, args := range [][]string{
		{"task", "show", "0192f0c4-1b2c-7d3e-8f40-123456789abc"},
		{"template", "list"},
		{"migrate", "status"},
	} {
		r := userErr(t, url, args...)
		require.Contains(t, r.stderr, "no database reachable at 127.0.0.1:1/x")
	}
	r := cli(t, "template", "list")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "DATABASE_URL")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--bogus"},
		{"step", "start", "--bogus", "x"},
		{"nope"},
		{"migrate"},
		{"migrate", "sideways"},
		{"step", "start"},
		{"task", "show", "a", "b"},
		{"template", "validate"},
	} {
		r := cli(t, args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		require.True(t, strings.HasPrefix(r.stderr, "stepevents: "), r.stderr)
	}
	require.Equal(t, 0, cli(t, "--help").code)
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	url := testdb.NewEmptyURL(t)

	var st []struct {
		Version int64  `json:"version"`
		Applied bool   `json:"applied"`
		Source  string `json:"source"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok(t, url, "migrate", "status", "--json")), &st))
	require.NotEmpty(t, st)
	for _, s := range st {
		require.False(t, s.Applied, s.Source)
	}

	require.Contains(t, ok(t, url, "migrate", "up"), "migrated up")
	require.NoError(t, json.Unmarshal([]byte(ok(t, url, "migrate", "status", "--json")), &st))
	for _, s := range st {
		require.True(t, s.Applied, s.Source)
	}
	require.Regexp(t, `(?m)^\d+\s+true\s+\S+`, ok(t, url, "migrate", "status"))
	ok(t, url, "template", "apply", goodTemplate)

	require.Contains(t, ok(t, url, "migrate", "down"), "version 0")
	require.NoError(t, json.Unmarshal([]byte(ok(t, url, "migrate", "status", "--json")), &st))
	for _, s := range st {
		require.False(t, s.Applied, s.Source)
	}
	ok(t, url, "migrate", "up")
}

// TestHelpHidesDatabasePassword: --help shows the default of --database-url
// (DATABASE_URL) without its password, in every form pgx accepts.
func TestHelpHidesDatabasePassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ env, shown string }{
		{"postgres://alice:s3cretpw@db.example:5432/app?sslmode=disable",
			`(default "postgres://alice@db.example:5432/app (with a password)")`},
		{"postgresql://alice@db.example/app?password=s3cretpw&sslmode=disable",
			`(default "postgres://alice@db.example:5432/app (with a password)")`},
		{"host=db.example user=alice password='s3cretpw and more' dbname=app",
			`(default "postgres://alice@db.example:5432/app (with a password)")`},
		{`host=db.example user=alice password=s3cretpw\ s3cretpw dbname=app`,
			`(default "postgres://alice@db.example:5432/app (with a password)")`},
		// Forms that url.Parse refuses or that hide the password from a
		// plain search: several hosts, a percent-encoded password.
		{"postgres://alice:s3cretp%77@db1:5432,db2/app",
			`(default "postgres://alice@db1:5432/app (and 1 more host(s)) (with a password)")`},
		{"postgres://alice@%2Fvar%2Frun%2Fpostgresql/app", `(default "postgres://alice@/app?host=/var/run/postgresql&port=5432")`},
		{"postgres://alice@[::1]:5433/app", `(default "postgres://alice@[::1]:5433/app")`},
		{"postgres://alice@db.example/app", `(default "postgres://alice@db.example:5432/app")`},
	} {
		for _, args := range [][]string{{"--help"}, {"step", "start", "--help"}} {
			r := cliEnv(t, tc.env, args...)
			require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
			for _, secret := range []string{"s3cret", "p%77"} {
				require.NotContains(t, r.stdout+r.stderr, secret, "%v with DATABASE_URL=%s", args, tc.env)
			}
			require.Contains(t, r.stdout, tc.shown, args)
		}
	}
	r := cliEnv(t, "", "--help")
	require.Regexp(t, `--database-url string\s+PostgreSQL URL; the default is \$DATABASE_URL\n`, r.stdout)
}

// TestDatabaseURLFromEnvironment: DATABASE_URL is still the default of
// --database-url, and the flag overrides it.
func TestDatabaseURLFromEnvironment(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	const unreachable = "postgres://nobody:pw@127.0.0.1:1/x"

	r := cliEnv(t, url, "template", "apply", goodTemplate)
	require.Equal(t, 0, r.code, r.stderr)
	r = cliEnv(t, url, "template", "list")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "domain_event_publishing")

	r = cliEnv(t, unreachable, "template", "list")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "no database reachable at 127.0.0.1:1/x")

	r = cliEnv(t, unreachable, "--database-url", url, "template", "list")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "domain_event_publishing")
}

// TestFlagValues: an invalid flag value is a usage error (exit 2) whose
// message names the flag, for every command, before anything connects: the
// database here is unreachable, so a check made later would exit 1.
func TestFlagValues(t *testing.T) {
	t.Parallel()
	const unreachable = "postgres://nobody@127.0.0.1:1/x"
	const step = "0192f0c4-1b2c-7d3e-8f40-123456789abc"
	create := []string{"task", "create", "domain_events/domain_event_publishing"}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{append(create, "--context", `[{"order_id": "x"}]`), "--context must be a JSON object like '{\"order_id\": \"…\"}', got an array"},
		{append(create, "--context", `"order"`), "--context must be a JSON object like '{\"order_id\": \"…\"}', got a string"},
		{append(create, "--context", ` 42`), "--context must be a JSON object like '{\"order_id\": \"…\"}', got a number"},
		{append(create, "--context", `null`), "--context must be a JSON object like '{\"order_id\": \"…\"}', got null"},
		{append(create, "--context", `{"order_id": `), "--context is not valid JSON"},
		{[]string{"step", "complete", step, "--result", `{`}, "--result is not valid JSON"},
		{[]string{"step", "fail", step}, "--error is required"},
		{[]string{"step", "fail", step, "--error", "x", "--retry-after", "-5s"}, `invalid --retry-after "-5s"`},
		{[]string{"step", "fail", step, "--error", "x", "--retry-after", "0s"}, `invalid --retry-after "0s"`},
		{[]string{"step", "fail", step, "--error", "x", "--permanent=maybe"}, `"--permanent"`},
		{[]string{"events", "list", "domain_events", "--limit", "abc"}, `"--limit"`},
		{[]string{"events", "list", "domain_events", "--limit", "-3"}, "--limit must be between 1 and 1000000, got -3"},
		{[]string{"events", "list", "domain_events", "--limit", "3000000000"}, "--limit must be between 1 and 1000000"},
		{[]string{"events", "consume", "domain_events", "--vt", "-1s"}, "--vt must be between 1s and 24h0m0s, got -1s"},
		{[]string{"events", "consume", "domain_events", "--vt", "1000000h"}, "--vt must be between 1s and 24h0m0s"},
		{[]string{"demo", "--orders", "abc"}, `"--orders"`},
		{[]string{"demo", "--workers", "-1"}, "--workers must be between 1 and 256, got -1"},
		{[]string{"demo", "--seed", "-1"}, `"--seed"`},
		{[]string{"demo", "--timeout", "-1s"}, "--timeout must be a positive duration like 5m, got -1s"},
		{[]string{"demo", "--timeout", "0s"}, "--timeout must be a positive duration like 5m, got 0s"},
		{[]string{"demo", "--demo-database", "Bad-Name"}, `--demo-database "Bad-Name" is not a plain lower-case name`},
		{[]string{"bench", "--duration", "-1s"}, "--duration must be a positive duration like 5s, got -1s"},
		{[]string{"bench", "--duration", "soon"}, `"--duration"`},
		{[]string{"bench", "--slices", "0"}, "--slices must be positive, got 0"},
		{[]string{"bench", "--slices", "abc"}, `"--slices"`},
		{[]string{"bench", "--scenarios", "nope"}, "no scenario matches --scenarios nope"},
		{[]string{"listen", "--channel", "Bad-Channel"}, `invalid --channel: channel "Bad-Channel" must match`},
	} {
		r := usageErr(t, unreachable, tc.args...)
		require.Contains(t, r.stderr, tc.msg, tc.args)
	}
	// An unparsable --database-url on the command line is a usage error too,
	// and its message does not repeat the value (it may hold a password).
	r := cli(t, "--database-url", "postgres://u:secretpw@host:notaport/db", "template", "list")
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "stepevents: invalid --database-url: check its syntax")
	require.NotContains(t, r.stderr, "secretpw")
}

// TestTemplateVersionSelection: no version and @latest both pick the newest
// applied version, compared numerically (10.0.0 after 9.0.0, not before as
// in string order); template list sorts the same way; a malformed version in
// a reference is refused with a message naming it.
func TestTemplateVersionSelection(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	const ref = "domain_events/versions"
	var files []string
	for _, v := range []string{"9.0.0", "10.0.0", "1.10.0", "1.9.0"} {
		files = append(files, writeTemplate(t, v+".yaml", "name: domain_event_publishing", "name: versions",
			"version: 1.0.0", "version: "+v))
	}
	ok(t, url, append([]string{"template", "apply"}, files...)...)

	templateOf := func(args ...string) string {
		t.Helper()
		id := strings.TrimSpace(ok(t, url, append([]string{"task", "create"}, args...)...))
		var shown struct {
			Template string `json:"template"`
		}
		require.NoError(t, json.Unmarshal([]byte(ok(t, url, "task", "show", "--json", id)), &shown))
		return shown.Template
	}
	require.Equal(t, ref+"@10.0.0", templateOf(ref, "--context", orderContext))
	require.Equal(t, ref+"@10.0.0", templateOf(ref+"@latest", "--context", orderContext))
	require.Equal(t, ref+"@9.0.0", templateOf(ref+"@9.0.0", "--context", orderContext))
	require.Equal(t, ref+"@1.10.0", templateOf(ref+"@1.10.0", "--context", orderContext))

	require.Regexp(t, `(?s)versions\s+1\.9\.0.*versions\s+1\.10\.0.*versions\s+9\.0\.0.*versions\s+10\.0\.0`,
		ok(t, url, "template", "list"))

	for _, v := range []string{"v10", "10", "1.0", "01.0.0", "1.0.0-beta", "Latest", "1.0.0.0"} {
		r := userErr(t, url, "task", "create", ref+"@"+v, "--context", orderContext)
		require.Equal(t, fmt.Sprintf("stepevents: invalid version %q in template %q: write MAJOR.MINOR.PATCH like "+
			"1.0.0 (digits only, no leading zeros), or latest\n", v, ref+"@"+v), r.stderr)
	}
	r := userErr(t, url, "task", "create", ref+"@2.0.0", "--context", orderContext)
	require.Equal(t, "stepevents: template "+ref+"@2.0.0 not found\n", r.stderr)
}

// --context and --result take any valid JSON, also numbers beyond float64
// that jsonb stores; invalid JSON is named with the flag.
func TestParseJSONFlag(t *testing.T) {
	t.Parallel()
	raw, err := parseJSONObjectFlag("context", `{"amount": 1e400}`)
	require.NoError(t, err)
	require.Equal(t, `{"amount": 1e400}`, string(raw))
	_, err = parseJSONFlag("result", `{"amount": }`)
	require.ErrorContains(t, err, "--result is not valid JSON")
	_, err = parseJSONFlag("result", ``)
	require.ErrorContains(t, err, "--result is not valid JSON")
}
