package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/runner"
	"github.com/stepevents/stepevents/events/template"
)

// lastError is a step's recorded error document.
type lastError struct {
	Message   string `json:"message"`
	Type      string `json:"type"`
	Code      string `json:"code"`
	Permanent bool   `json:"permanent"`
}

// runValidate runs a runner whose validate handler is h until the validate
// step of a single order leaves in_progress for good (waiting_for_retry or
// error), and returns the step's state, attempts and error, and the stats.
func runValidate(t *testing.T, cfg runner.Config, h runner.HandlerFunc) (string, int, lastError, runner.Stats) {
	t.Helper()
	b := setup(t, 2)
	b.createOrders(t, []order{{}})
	cfg.Handlers = map[string]runner.HandlerFunc{fixtureSteps[validateStep]: h}
	cfg.PollInterval = 5 * time.Millisecond
	s := b.start(t, cfg)
	var state string
	waitFor(t, 30*time.Second, "the validate step to fail", func() bool {
		state = ""
		_ = b.pool.QueryRow(context.Background(), `SELECT state FROM stepevents.workflow_steps WHERE name = $1`,
			validateStep).Scan(&state)
		return state == "waiting_for_retry" || state == "error"
	})
	require.NoError(t, s.stop(t))
	var attempts int
	var doc []byte
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT state, attempts, last_error FROM stepevents.workflow_steps WHERE name = $1`, validateStep).
		Scan(&state, &attempts, &doc))
	var le lastError
	require.NoError(t, json.Unmarshal(doc, &le))
	return state, attempts, le, s.r.Stats()
}

func TestRunnerFailures(t *testing.T) {
	t.Parallel()
	t.Run("PermanentEndsInErrorWithAttemptsLeft", func(t *testing.T) {
		t.Parallel()
		state, attempts, le, st := runValidate(t, runner.Config{},
			func(context.Context, events.Step, events.Task) (json.RawMessage, error) {
				return nil, runner.Permanent(runner.WithCode(errors.New("customer unknown"), "unknown_customer"))
			})
		require.Equal(t, "error", state)
		require.Equal(t, 1, attempts)
		require.Equal(t, lastError{Message: "customer unknown", Type: runner.TypeHandlerError,
			Code: "unknown_customer", Permanent: true}, le)
		require.Equal(t, uint64(1), st.Failed)
	})
	t.Run("ErrorIsRetryable", func(t *testing.T) {
		t.Parallel()
		state, attempts, le, _ := runValidate(t, runner.Config{},
			func(context.Context, events.Step, events.Task) (json.RawMessage, error) {
				return nil, fmt.Errorf("database of customers down")
			})
		require.Equal(t, "waiting_for_retry", state)
		require.Equal(t, 1, attempts)
		require.Equal(t, "database of customers down", le.Message)
		require.False(t, le.Permanent)
	})
	t.Run("PanicIsAFailure", func(t *testing.T) {
		t.Parallel()
		state, _, le, st := runValidate(t, runner.Config{},
			func(context.Context, events.Step, events.Task) (json.RawMessage, error) {
				panic("nil map")
			})
		require.Equal(t, "waiting_for_retry", state)
		require.Equal(t, runner.TypePanic, le.Type)
		require.Contains(t, le.Message, "panicked: nil map")
		require.Equal(t, uint64(1), st.Panics)
		require.Equal(t, uint64(1), st.Failed)
	})
	t.Run("StepTimeoutFromConfig", func(t *testing.T) {
		t.Parallel()
		state, _, le, st := runValidate(t, runner.Config{StepTimeout: 50 * time.Millisecond},
			func(ctx context.Context, _ events.Step, _ events.Task) (json.RawMessage, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			})
		require.Equal(t, "waiting_for_retry", state)
		require.Equal(t, runner.TypeTimeout, le.Type)
		require.Equal(t, runner.TypeTimeout, le.Code)
		require.Contains(t, le.Message, "timed out after 50ms")
		require.Equal(t, uint64(1), st.TimedOut)
	})
	t.Run("RefusedResultIsAFailure", func(t *testing.T) {
		t.Parallel()
		state, _, le, st := runValidate(t, runner.Config{},
			func(context.Context, events.Step, events.Task) (json.RawMessage, error) {
				return json.RawMessage(`{"note": "\u0000"}`), nil
			})
		require.Equal(t, "waiting_for_retry", state)
		require.Equal(t, runner.TypeInvalidResult, le.Type)
		require.Contains(t, le.Message, `\u0000`)
		require.Equal(t, uint64(1), st.Failed)
		require.Zero(t, st.Completed)
	})
}

// TestRunnerStepTimeoutFromTemplate: a step's own timeout_seconds wins
// over Config.StepTimeout.
func TestRunnerStepTimeoutFromTemplate(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	tpl, err := template.Load("slow.yaml", []byte(`
name: slow
namespace_name: runner_tests
version: 1.0.0
description: One step with its own timeout
steps:
  - name: slow_step
    description: Takes too long
    handler:
      callable: runner_tests.slow
    timeout_seconds: 1
    retry:
      retryable: false
      max_attempts: 1
`))
	require.NoError(t, err)
	require.NoError(t, b.client.ApplyTemplate(context.Background(), tpl))
	_, err = b.client.CreateTask(context.Background(), events.CreateTaskParams{Namespace: "runner_tests", Name: "slow"})
	require.NoError(t, err)

	var took time.Duration
	s := b.start(t, runner.Config{StepTimeout: time.Hour, PollInterval: 5 * time.Millisecond,
		Handlers: map[string]runner.HandlerFunc{"runner_tests.slow": func(ctx context.Context, _ events.Step, _ events.Task) (json.RawMessage, error) {
			start := time.Now()
			<-ctx.Done()
			took = time.Since(start)
			return nil, ctx.Err()
		}}})
	waitFor(t, 30*time.Second, "the task to fail", func() bool { return b.unfinishedTasks(t) == 0 })
	require.NoError(t, s.stop(t))
	require.GreaterOrEqual(t, took, time.Second)
	require.Less(t, took, time.Minute)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps
		WHERE state = 'error' AND last_error->>'type' = 'timeout'`))
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	h := func(context.Context, events.Step, events.Task) (json.RawMessage, error) { return nil, nil }
	for name, cfg := range map[string]runner.Config{
		"no handlers":        {},
		"nil handler":        {Handlers: map[string]runner.HandlerFunc{"x": nil}},
		"negative workers":   {Handlers: map[string]runner.HandlerFunc{"x": h}, Workers: -1},
		"negative timeout":   {Handlers: map[string]runner.HandlerFunc{"x": h}, StepTimeout: -time.Second},
		"negative poll":      {Handlers: map[string]runner.HandlerFunc{"x": h}, PollInterval: -time.Second},
		"too many workers":   {Handlers: map[string]runner.HandlerFunc{"x": h}, Workers: 5000},
		"negative grace":     {Handlers: map[string]runner.HandlerFunc{"x": h}, ShutdownGrace: -1},
		"negative staleness": {Handlers: map[string]runner.HandlerFunc{"x": h}, StaleGrace: -1},
	} {
		_, err := runner.New(b.client, b.pool, cfg)
		require.ErrorIs(t, err, events.ErrInvalidInput, name)
	}
	_, err := runner.New(nil, b.pool, runner.Config{Handlers: map[string]runner.HandlerFunc{"x": h}})
	require.ErrorIs(t, err, events.ErrInvalidInput)
}

func TestRunTwiceAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	b.createOrders(t, []order{{}})
	s := b.start(t, runner.Config{Handlers: b.blockingHandlers(make(chan struct{})), ShutdownGrace: time.Millisecond})
	waitFor(t, 10*time.Second, "a handler in flight", func() bool { return s.r.Stats().InFlight == 1 })
	require.ErrorIs(t, s.r.Run(context.Background()), runner.ErrAlreadyRunning)
	require.NoError(t, s.stop(t))
}

// A pool whose connections default to REPEATABLE READ is refused at once,
// saying so: every claim would fail and the runner only log and retry.
func TestRunRefusesNonReadCommittedPool(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	cfg := b.pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "repeatable read"
	rr, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(rr.Close)
	r, err := runner.New(b.client, rr, runner.Config{Handlers: b.blockingHandlers(make(chan struct{}))})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = r.Run(ctx)
	require.ErrorIs(t, err, events.ErrInvalidInput)
	require.ErrorContains(t, err, "REPEATABLE READ")
	require.NoError(t, ctx.Err(), "Run returned at once")
}
