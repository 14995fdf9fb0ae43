package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/stepevents/stepevents/events"
)

// HandlerFunc runs one attempt of a step. step is the step as claimed
// (in_progress; step.Attempts is this attempt's number), task its task with
// the input context. ctx ends at the step's timeout, or when the runner
// gives up waiting for the handler at shutdown; a handler should return
// promptly then, because whatever it returns after that is discarded.
//
// A nil error records result (JSON; nil is stored as null) as the step's
// result. An error records a failed attempt: retryable while the template
// allows and attempts remain, unless wrapped with Permanent; RetryAfter
// and WithCode shape it further.
type HandlerFunc func(ctx context.Context, step events.Step, task events.Task) (result json.RawMessage, err error)

// Defaults for the zero fields of Config.
const (
	DefaultWorkers         = 4
	DefaultPollInterval    = 100 * time.Millisecond
	DefaultStepTimeout     = 30 * time.Second
	DefaultShutdownGrace   = 10 * time.Second
	DefaultRecordTimeout   = 30 * time.Second
	DefaultStaleGrace      = time.Minute
	DefaultRecoverInterval = 30 * time.Second
)

// maxClaimBatch bounds one claim (stepevents.claim_ready_steps' limit).
const maxClaimBatch = 1000

// Config configures a Runner. Handlers is required; every other zero field
// takes its default.
type Config struct {
	// Handlers maps a template step's handler name (its callable) to the
	// function that runs it. The runner claims only steps whose handler is
	// here, so several runners may split a namespace's handlers.
	Handlers map[string]HandlerFunc
	// Workers is how many handlers run at once (DefaultWorkers). Give the
	// pool at least Workers+2 connections: each worker records on its own
	// connection, and claims and recovery need one more.
	Workers int
	// PollInterval is how long the runner waits before claiming again when
	// it found no ready step (DefaultPollInterval). A finished step wakes it
	// at once, so dependents start without waiting; PollInterval bounds how
	// late a retry starts after its backoff and how soon work created by
	// other processes is noticed.
	PollInterval time.Duration
	// StepTimeout is the deadline of steps whose template sets no
	// timeout_seconds (DefaultStepTimeout).
	StepTimeout time.Duration
	// ShutdownGrace is how long Run waits, once its ctx is cancelled, for
	// in-flight handlers to finish before it releases their steps
	// (DefaultShutdownGrace).
	ShutdownGrace time.Duration
	// RecordTimeout bounds recording one outcome, releasing a step and one
	// claim (DefaultRecordTimeout). It is not tied to Run's ctx, so an
	// outcome is recorded even while the runner stops.
	RecordTimeout time.Duration
	// StaleGrace is how far past its timeout an in_progress attempt may run
	// before RecoverStaleSteps presumes its worker lost (DefaultStaleGrace).
	StaleGrace time.Duration
	// RecoverInterval is how often Run calls RecoverStaleSteps
	// (DefaultRecoverInterval); negative disables it.
	RecoverInterval time.Duration
	// Logger receives the runner's logs; nil discards them.
	Logger *slog.Logger
	// OnRecorded, when set, is called with every completion the runner
	// committed (successes, failures and stale recoveries), after commit,
	// from the goroutine that recorded it: keep it quick. An outcome whose
	// COMMIT reply was lost has no Completion and is not passed (see
	// Stats.Unacknowledged).
	OnRecorded func(*events.Completion)
}

// withDefaults fills the zero fields and checks the rest; the error names
// the field.
func (c Config) withDefaults() (Config, error) {
	if len(c.Handlers) == 0 {
		return c, fmt.Errorf("runner: Config.Handlers is empty: register at least one handler: %w", events.ErrInvalidInput)
	}
	for name, h := range c.Handlers {
		if h == nil {
			return c, fmt.Errorf("runner: Config.Handlers[%q] is nil: %w", name, events.ErrInvalidInput)
		}
	}
	def := func(field string, d *time.Duration, v time.Duration) error {
		if *d < 0 {
			return fmt.Errorf("runner: Config.%s must not be negative, got %s: %w", field, *d, events.ErrInvalidInput)
		}
		if *d == 0 {
			*d = v
		}
		return nil
	}
	if c.Workers < 0 || c.Workers > maxClaimBatch {
		return c, fmt.Errorf("runner: Config.Workers must be between 1 and %d, got %d: %w", maxClaimBatch, c.Workers,
			events.ErrInvalidInput)
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	for _, f := range []struct {
		name string
		d    *time.Duration
		v    time.Duration
	}{
		{"PollInterval", &c.PollInterval, DefaultPollInterval},
		{"StepTimeout", &c.StepTimeout, DefaultStepTimeout},
		{"ShutdownGrace", &c.ShutdownGrace, DefaultShutdownGrace},
		{"RecordTimeout", &c.RecordTimeout, DefaultRecordTimeout},
		{"StaleGrace", &c.StaleGrace, DefaultStaleGrace},
	} {
		if err := def(f.name, f.d, f.v); err != nil {
			return c, err
		}
	}
	if c.RecoverInterval == 0 {
		c.RecoverInterval = DefaultRecoverInterval
	}
	return c, nil
}
