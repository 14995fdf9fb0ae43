package consumer

import (
	"errors"
	"fmt"
)

// ErrDuplicate is returned by a handler (wrapped or not) to say the event was
// already handled: the message is acknowledged like a success and counted
// as a duplicate. Idempotent returns it for redelivered events.
var ErrDuplicate = errors.New("event already handled")

// ErrPermanent marks a handler error that retrying cannot fix (a malformed
// event, a reference to something that will never exist): the message is
// dead-lettered at once instead of after MaxReads reads. Wrap with Permanent.
var ErrPermanent = errors.New("permanent failure")

// permanentError wraps an error so that errors.Is(err, ErrPermanent) holds
// while the message stays the cause's own.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() []error {
	return []error{e.err, ErrPermanent}
}

// Permanent marks err as permanent (see ErrPermanent); nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// panicError is a recovered handler panic: a failure like any other.
func panicError(v any) error {
	return fmt.Errorf("handler panicked: %v", v)
}
