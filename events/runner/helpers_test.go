package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/runner"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/test/testdb"
)

const (
	fixture   = "../../test/templates/good/domain_event_publishing.yaml"
	namespace = "domain_events"
	queue     = "pgmq.q_domain_events_domain_events"

	validateStep     = "domain_events_validate_order"
	paymentStep      = "domain_events_process_payment"
	inventoryStep    = "domain_events_update_inventory"
	notificationStep = "domain_events_send_notification"
)

// fixtureSteps maps each fixture step to its handler name.
var fixtureSteps = map[string]string{
	validateStep:     "domain_events.validate_order",
	paymentStep:      "domain_events.process_payment",
	inventoryStep:    "domain_events.update_inventory",
	notificationStep: "domain_events.send_notification",
}

// bundle is one test's database, client and what its handlers saw.
type bundle struct {
	pool   *pgxpool.Pool
	client *events.Client
	calls  *calls
}

// setup gives a test its own migrated database with the fixture applied,
// a pool big enough for workers, and a client with the fixture publishers.
func setup(t *testing.T, workers int) *bundle {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(t))
	require.NoError(t, err)
	cfg.MaxConns = int32(workers + 4)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	client, err := events.NewClient(ctx, pool, &events.Config{Publishers: publishers.All()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close(context.Background())) })
	tpl, err := template.LoadFile(fixture)
	require.NoError(t, err)
	require.NoError(t, client.ApplyTemplate(ctx, tpl))
	return &bundle{pool: pool, client: client, calls: &calls{seen: map[attemptKey]int{}}}
}

// order says how one order's steps behave.
type order struct {
	// Fail names the step that fails ("" for none).
	Fail string `json:"fail,omitempty"`
	// Times is how many attempts of Fail fail retryably before one succeeds;
	// 0 with Fail set means a permanent failure.
	Times int `json:"times,omitempty"`
}

// createOrders creates one task per order and returns their uuids.
func (b *bundle) createOrders(t *testing.T, orders []order) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, 0, len(orders))
	for i, o := range orders {
		plan, err := json.Marshal(o)
		require.NoError(t, err)
		ctxJSON := fmt.Sprintf(`{"order_id": %q, "customer_id": "c-%d", "amount": %d, "plan": %s}`,
			uuid.NewString(), i, 10+i%90, plan)
		id, err := b.client.CreateTask(context.Background(), events.CreateTaskParams{
			Namespace: namespace, Name: "domain_event_publishing", Context: json.RawMessage(ctxJSON)})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	return ids
}

// attemptKey is one attempt of one step.
type attemptKey struct {
	step    uuid.UUID
	attempt int
}

// calls counts handler invocations per attempt.
type calls struct {
	mu   sync.Mutex
	seen map[attemptKey]int
}

func (c *calls) add(s events.Step) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[attemptKey{s.StepUUID, s.Attempts}]++
}

func (c *calls) snapshot() map[attemptKey]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[attemptKey]int, len(c.seen))
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

// orderHandlers are the fixture's four handlers: each counts its call,
// optionally does some simulated work (ctx-aware), then follows the task's
// plan, returning results that satisfy the fixture's event schemas.
func (b *bundle) orderHandlers(work time.Duration) map[string]runner.HandlerFunc {
	h := func(ctx context.Context, s events.Step, task events.Task) (json.RawMessage, error) {
		b.calls.add(s)
		if work > 0 {
			select {
			case <-time.After(work):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var in struct {
			OrderID string `json:"order_id"`
			Plan    order  `json:"plan"`
		}
		if err := json.Unmarshal(task.Context, &in); err != nil {
			return nil, runner.Permanent(err)
		}
		if in.Plan.Fail == s.Name {
			if in.Plan.Times == 0 {
				return nil, runner.Permanent(runner.WithCode(errors.New("declined"), "declined"))
			}
			if s.Attempts <= in.Plan.Times {
				return nil, runner.RetryAfter(runner.WithCode(errors.New("busy, try again"), "busy"), 10*time.Millisecond)
			}
		}
		return resultFor(s.Name, in.OrderID), nil
	}
	out := map[string]runner.HandlerFunc{}
	for _, name := range fixtureSteps {
		out[name] = h
	}
	return out
}

// resultFor returns a result for step that satisfies the events it declares.
func resultFor(step, orderID string) json.RawMessage {
	var v any
	switch step {
	case validateStep:
		v = map[string]any{"order_id": orderID, "validation_timestamp": time.Now().UTC().Format(time.RFC3339)}
	case paymentStep:
		v = map[string]any{"transaction_id": "txn-" + orderID[:8], "amount": 42.5, "currency": "USD", "payment_method": "card"}
	case inventoryStep:
		v = map[string]any{"order_id": orderID, "items_reserved": 2}
	default:
		v = map[string]any{"channel": "email"}
	}
	b, _ := json.Marshal(v)
	return b
}

// started is a running Runner; stop cancels it and returns Run's error.
type started struct {
	r      *runner.Runner
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's, once done is closed
}

func (s *started) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
		return s.err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of cancellation")
		return nil
	}
}

// start runs a runner with cfg until the test stops it (or ends).
func (b *bundle) start(t *testing.T, cfg runner.Config) *started {
	t.Helper()
	r, err := runner.New(b.client, b.pool, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{r: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// count runs a counting query.
func (b *bundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// unfinishedTasks counts tasks neither complete nor in error.
func (b *bundle) unfinishedTasks(t *testing.T) int {
	return b.count(t, `SELECT count(*) FROM stepevents.tasks WHERE state NOT IN ('complete', 'error')`)
}

// startedAttempts reads every attempt started, from the transition history.
func (b *bundle) startedAttempts(t *testing.T) map[attemptKey]int {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `
		SELECT step_uuid, (metadata->>'attempt')::int FROM stepevents.workflow_step_transitions
		WHERE to_state = 'in_progress'`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[attemptKey]int{}
	for rows.Next() {
		var k attemptKey
		require.NoError(t, rows.Scan(&k.step, &k.attempt))
		out[k]++
	}
	require.NoError(t, rows.Err())
	return out
}

// requireEachAttemptOnce checks that every attempt the database started
// ran its handler exactly once, and that every handler call was such an
// attempt, each ending in exactly one recorded outcome.
func (b *bundle) requireEachAttemptOnce(t *testing.T) {
	t.Helper()
	started := b.startedAttempts(t)
	for k, n := range started {
		require.Equal(t, 1, n, "attempt %d of step %s started %d times", k.attempt, k.step, n)
	}
	for k, n := range b.calls.snapshot() {
		require.Equal(t, 1, n, "attempt %d of step %s ran %d times", k.attempt, k.step, n)
		require.Contains(t, started, k, "attempt %d of step %s ran but was never started", k.attempt, k.step)
	}
	require.Len(t, b.calls.snapshot(), len(started), "every started attempt ran")
	// Each attempt ended exactly once: one transition out of in_progress per start.
	require.Equal(t, len(started), b.count(t, `SELECT count(*) FROM stepevents.workflow_step_transitions
		WHERE from_state = 'in_progress' AND to_state IN ('complete', 'waiting_for_retry', 'error')`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM stepevents.workflow_steps WHERE state = 'in_progress'`))
}

// completions collects what the runner committed.
type completions struct {
	mu   sync.Mutex
	list []*events.Completion
}

func (c *completions) add(comp *events.Completion) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = append(c.list, comp)
}

func (c *completions) all() []*events.Completion {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*events.Completion(nil), c.list...)
}
