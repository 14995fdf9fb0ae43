package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/runner"
)

// TestRunnerHonoursBackoff: a retryable failure asking for 300ms is retried
// only once its next_retry_at has passed (both times read from the
// database clock), although the runner polls every 5ms meanwhile.
func TestRunnerHonoursBackoff(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	b.createOrders(t, []order{{}})

	var mu sync.Mutex
	var nextRetryAt, lastFailureAt, retriedAt time.Time
	handlers := b.orderHandlers(0)
	handlers[fixtureSteps[paymentStep]] = func(_ context.Context, s events.Step, task events.Task) (json.RawMessage, error) {
		b.calls.add(s)
		if s.Attempts == 1 {
			return nil, runner.RetryAfter(errors.New("gateway busy"), 300*time.Millisecond)
		}
		mu.Lock()
		retriedAt = *s.LastAttemptedAt
		mu.Unlock()
		return resultFor(s.Name, "00000000-0000-0000-0000-000000000000"), nil
	}
	onRecorded := func(c *events.Completion) {
		if !c.Succeeded {
			mu.Lock()
			nextRetryAt, lastFailureAt = *c.Step.NextRetryAt, *c.Step.LastFailureAt
			mu.Unlock()
		}
	}
	s := b.start(t, runner.Config{Workers: 2, PollInterval: 5 * time.Millisecond, Handlers: handlers,
		OnRecorded: onRecorded})
	waitFor(t, 30*time.Second, "the task to finish", func() bool { return b.unfinishedTasks(t) == 0 })
	require.NoError(t, s.stop(t))

	mu.Lock()
	defer mu.Unlock()
	require.False(t, nextRetryAt.IsZero(), "the failure was recorded")
	require.InDelta(t, 300*time.Millisecond, nextRetryAt.Sub(lastFailureAt), float64(time.Millisecond))
	require.False(t, retriedAt.Before(nextRetryAt), "retried at %s, before next_retry_at %s", retriedAt, nextRetryAt)
	b.requireEachAttemptOnce(t)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM stepevents.tasks WHERE state = 'complete'`))
}
