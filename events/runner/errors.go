package runner

import (
	"errors"
	"fmt"
	"time"

	"github.com/stepevents/stepevents/events"
)

// ErrAlreadyRunning is returned by Run while another Run of the same Runner
// is active: one Runner has one set of workers.
var ErrAlreadyRunning = errors.New("runner already running")

// errSuperseded: the attempt a result belongs to is no longer the step's
// in_progress attempt (released, recovered as stale, or recorded already).
// The same sentinel the claim fence of CompleteClaimedStep returns.
var errSuperseded = events.ErrSuperseded

// maxMessageBytes bounds the failure message recorded from a handler error.
const maxMessageBytes = 4096

// Failure types recorded by the runner (events.Failure.Type, the error
// document's "type").
const (
	// TypeHandlerError: the handler returned an error.
	TypeHandlerError = "handler_error"
	// TypePanic: the handler panicked.
	TypePanic = "panic"
	// TypeTimeout: the handler returned an error after its deadline passed.
	TypeTimeout = "timeout"
	// TypeInvalidResult: the handler's result was refused (not JSON, too big).
	TypeInvalidResult = "invalid_result"
	// TypeStaleAttempt: the attempt's worker was presumed lost (RecoverStaleSteps).
	TypeStaleAttempt = "stale_attempt"
)

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks a handler error as not worth retrying (a declined card,
// an invalid order): the step goes to error even with attempts left, and
// permanent_failure events fire. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter asks for the next attempt no sooner than d from now, instead
// of the step's configured backoff (capped at its max_backoff_ms): for a
// dependency that said when to come back. It does not make a permanent
// error retryable. RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, after: d}
}

type codedError struct {
	err  error
	code string
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// WithCode sets the failure code recorded with the error (the error
// document's and the failure events' "code"), so consumers can branch on it
// without parsing messages. WithCode(nil, c) is nil.
func WithCode(err error, code string) error {
	if err == nil {
		return nil
	}
	return &codedError{err: err, code: code}
}

// failureOf turns a handler error into the failure recorded for it.
func failureOf(err error, typ string) events.Failure {
	f := events.Failure{Message: truncate(err.Error(), maxMessageBytes), Type: typ}
	var p *permanentError
	if errors.As(err, &p) {
		f.Permanent = true
	}
	var ra *retryAfterError
	if errors.As(err, &ra) && ra.after > 0 {
		f.RetryAfter = ra.after
	}
	var c *codedError
	if errors.As(err, &c) {
		f.Code = c.code
	}
	return f
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}

// panicError is what a recovered handler panic is recorded as.
func panicError(handler string, v any) error {
	return fmt.Errorf("handler %s panicked: %v", handler, v)
}
