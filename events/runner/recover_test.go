package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/runner"
	"github.com/stepevents/stepevents/examples/publishers"
)

// stepOf returns the uuid of a task's step.
func (b *bundle) stepOf(t *testing.T, task uuid.UUID, name string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT step_uuid FROM stepevents.workflow_steps WHERE task_uuid = $1 AND name = $2`, task, name).Scan(&id))
	return id
}

// crash starts a step as a worker would and then "dies": its attempt is
// backdated by an hour, as if nobody had reported since.
func (b *bundle) crash(t *testing.T, step uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	_, err := events.StartStep(ctx, b.pool, step)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE stepevents.workflow_steps SET last_attempted_at = now() - interval '1 hour'
		WHERE step_uuid = $1`, step)
	require.NoError(t, err)
}

func (b *bundle) stepState(t *testing.T, step uuid.UUID) (state string, attempts int, errType, errCode string) {
	t.Helper()
	var typ, code *string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT state, attempts, last_error->>'type', last_error->>'code'
		FROM stepevents.workflow_steps WHERE step_uuid = $1`, step).Scan(&state, &attempts, &typ, &code))
	if typ != nil {
		errType = *typ
	}
	if code != nil {
		errCode = *code
	}
	return state, attempts, errType, errCode
}

// TestRecoverStaleSteps: steps whose worker died get a way forward.
// RecoverStaleSteps fails them through the publishing path — retryable
// while attempts remain, error (with its permanent_failure event) once
// they are used up — leaves young attempts alone, and only touches steps
// of its own handlers.
func TestRecoverStaleSteps(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	ctx := context.Background()
	tasks := b.createOrders(t, make([]order, 3))

	// Task 0: validate started by a worker that died an hour ago.
	lost := b.stepOf(t, tasks[0], validateStep)
	b.crash(t, lost)
	// Task 1: validate started just now by a live worker.
	young := b.stepOf(t, tasks[1], validateStep)
	_, err := events.StartStep(ctx, b.pool, young)
	require.NoError(t, err)
	// Task 2: payment on its last attempt (3 of 3) when its worker died.
	validate := b.stepOf(t, tasks[2], validateStep)
	_, err = events.StartStep(ctx, b.pool, validate)
	require.NoError(t, err)
	_, err = b.client.CompleteStep(ctx, validate, resultFor(validateStep, uuid.NewString()))
	require.NoError(t, err)
	payment := b.stepOf(t, tasks[2], paymentStep)
	for range 2 {
		waitFor(t, 10*time.Second, "payment to be ready", func() bool {
			_, err := events.StartStep(ctx, b.pool, payment)
			return err == nil
		})
		_, err = b.client.FailStep(ctx, payment, events.Failure{Message: "busy", RetryAfter: time.Millisecond})
		require.NoError(t, err)
	}
	waitFor(t, 10*time.Second, "payment to be ready", func() bool {
		r, err := events.Readiness(ctx, b.pool, tasks[2], payment)
		return err == nil && r[0].ReadyForExecution
	})
	b.crash(t, payment)

	var comps completions
	cfg := runner.Config{StepTimeout: time.Minute, StaleGrace: time.Minute, RecoverInterval: -1, OnRecorded: comps.add}
	cfg.Handlers = map[string]runner.HandlerFunc{fixtureSteps[paymentStep]: b.orderHandlers(0)[fixtureSteps[paymentStep]]}
	payOnly, err := runner.New(b.client, b.pool, cfg)
	require.NoError(t, err)
	n, err := payOnly.RecoverStaleSteps(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "a runner recovers only its own handlers' steps")
	state, attempts, typ, code := b.stepState(t, payment)
	require.Equal(t, []any{"error", 3, runner.TypeStaleAttempt, "worker_lost"}, []any{state, attempts, typ, code})

	cfg.Handlers = b.orderHandlers(0)
	all, err := runner.New(b.client, b.pool, cfg)
	require.NoError(t, err)
	n, err = all.RecoverStaleSteps(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	state, attempts, typ, code = b.stepState(t, lost)
	require.Equal(t, []any{"waiting_for_retry", 1, runner.TypeStaleAttempt, "worker_lost"}, []any{state, attempts, typ, code})
	state, _, _, _ = b.stepState(t, young)
	require.Equal(t, "in_progress", state, "a young attempt is left alone")

	n, err = all.RecoverStaleSteps(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to recover")
	require.Equal(t, uint64(1), all.Stats().Recovered)

	// Recovery published the failures' declared events: payment.failed.permanent
	// (durable) for the exhausted payment step.
	require.Len(t, comps.all(), 2)
	var names []string
	for _, c := range comps.all() {
		for _, p := range c.Published {
			names = append(names, p.Name)
		}
	}
	require.Equal(t, []string{"payment.failed.permanent"}, names)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM `+queue+` WHERE message->>'event_name' = 'payment.failed.permanent'
		AND (message->'metadata'->>'task_uuid')::uuid = $1`, tasks[2]))

	// The way forward: a runner retries the lost step once its backoff ends.
	s := b.start(t, runner.Config{PollInterval: 10 * time.Millisecond, Handlers: b.orderHandlers(0), RecoverInterval: -1})
	waitFor(t, 30*time.Second, "task 0 to complete", func() bool {
		return b.count(t, `SELECT count(*) FROM stepevents.tasks WHERE task_uuid = $1 AND state = 'complete'`, tasks[0]) == 1
	})
	require.NoError(t, s.stop(t))
}

// TestRecoverSupersedesSlowWorker: when a live but slow worker's attempt is
// recovered as stale by another runner, the slow worker's late outcome is
// discarded, never recorded onto the next attempt, and the step goes on.
func TestRecoverSupersedesSlowWorker(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	ctx := context.Background()
	tasks := b.createOrders(t, []order{{}})
	release := make(chan struct{})
	handlers := b.orderHandlers(0)
	validate := fixtureSteps[validateStep]
	slow := b.blockingHandlers(release)[validate]
	handlers[validate] = slow
	s := b.start(t, runner.Config{Workers: 1, PollInterval: 10 * time.Millisecond, Handlers: handlers, RecoverInterval: -1})
	waitFor(t, 10*time.Second, "the handler to be in flight", func() bool { return s.r.Stats().InFlight == 1 })
	step := b.stepOf(t, tasks[0], validateStep)
	_, err := b.pool.Exec(ctx, `UPDATE stepevents.workflow_steps SET last_attempted_at = now() - interval '1 hour'
		WHERE step_uuid = $1`, step)
	require.NoError(t, err)

	other, err := runner.New(b.client, b.pool, runner.Config{Handlers: b.orderHandlers(0), RecoverInterval: -1})
	require.NoError(t, err)
	n, err := other.RecoverStaleSteps(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	close(release) // the slow worker finally returns a result for attempt 1
	waitFor(t, 10*time.Second, "the late outcome to be discarded", func() bool { return s.r.Stats().Superseded == 1 })
	waitFor(t, 30*time.Second, "the task to complete", func() bool { return b.unfinishedTasks(t) == 0 })
	require.NoError(t, s.stop(t))

	b.requireEachAttemptOnce(t)
	var outcomes []string
	rows, err := b.pool.Query(ctx, `SELECT to_state || ':' || (metadata->>'attempt') FROM stepevents.workflow_step_transitions
		WHERE step_uuid = $1 AND from_state = 'in_progress' ORDER BY sort_key`, step)
	require.NoError(t, err)
	for rows.Next() {
		var o string
		require.NoError(t, rows.Scan(&o))
		outcomes = append(outcomes, o)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"waiting_for_retry:1", "complete:2"}, outcomes)
	var result json.RawMessage
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT results FROM stepevents.workflow_steps WHERE step_uuid = $1`, step).Scan(&result))
	require.Contains(t, string(result), "validation_timestamp")
}

// failingFor is PaymentEventPublisher failing for one task's steps.
type failingFor struct {
	events.Publisher
	task uuid.UUID
}

func (f failingFor) Publish(ctx context.Context, sc *events.StepContext, d events.Declaration) ([]events.Emit, error) {
	if sc.TaskUUID == f.task {
		return nil, errors.New("payment service unavailable")
	}
	return f.Publisher.Publish(ctx, sc, d)
}

// TestRecoverSkipsAStepThatCannotBeRecovered: a stale step whose failure
// cannot be recorded (its publisher errors every time) neither stops the
// pass nor hides the stale steps behind it; the pass returns its error.
func TestRecoverSkipsAStepThatCannotBeRecovered(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	ctx := context.Background()
	tasks := b.createOrders(t, make([]order, 2))
	var payments []uuid.UUID
	for i, task := range tasks {
		validate := b.stepOf(t, task, validateStep)
		_, err := events.StartStep(ctx, b.pool, validate)
		require.NoError(t, err)
		_, err = b.client.CompleteStep(ctx, validate, resultFor(validateStep, uuid.NewString()))
		require.NoError(t, err)
		payment := b.stepOf(t, task, paymentStep)
		b.crash(t, payment)
		// The first task's attempt is the older: recovery meets it first.
		_, err = b.pool.Exec(ctx, `UPDATE stepevents.workflow_steps
			SET last_attempted_at = last_attempted_at - make_interval(hours => $2) WHERE step_uuid = $1`, payment, 2-i)
		require.NoError(t, err)
		payments = append(payments, payment)
	}

	client, err := events.NewClient(ctx, b.pool, &events.Config{Publishers: []events.Publisher{
		failingFor{Publisher: publishers.PaymentEventPublisher{}, task: tasks[0]},
		publishers.NotificationEventPublisher{}}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close(context.Background())) })
	r, err := runner.New(client, b.pool, runner.Config{StepTimeout: time.Minute, StaleGrace: time.Minute,
		RecoverInterval: -1, Handlers: b.orderHandlers(0)})
	require.NoError(t, err)

	n, err := r.RecoverStaleSteps(ctx)
	require.ErrorIs(t, err, events.ErrPublisher)
	require.ErrorContains(t, err, payments[0].String())
	require.Equal(t, 1, n)
	state, _, typ, _ := b.stepState(t, payments[0])
	require.Equal(t, []string{"in_progress", ""}, []string{state, typ}, "nothing of the failed recovery was recorded")
	state, _, typ, _ = b.stepState(t, payments[1])
	require.Equal(t, []string{"waiting_for_retry", runner.TypeStaleAttempt}, []string{state, typ},
		"the stale step behind it is recovered")
}
