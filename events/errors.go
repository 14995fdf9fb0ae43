package events

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stepevents/stepevents/internal/pgmissing"
)

// Sentinel errors. Errors returned by this package wrap one of these when the
// cause is known, so callers can use errors.Is; the message says which step,
// task or template and why.
var (
	// ErrNotFound: the task, step or template does not exist.
	ErrNotFound = errors.New("not found")
	// ErrIllegalTransition: the step's current state does not allow the change.
	ErrIllegalTransition = errors.New("illegal step transition")
	// ErrStepNotReady: the step cannot start yet (dependencies, backoff, attempts).
	ErrStepNotReady = errors.New("step not ready")
	// ErrInvalidInput: an argument was refused (bad JSON, invalid context, conflicting template).
	ErrInvalidInput = errors.New("invalid input")
	// ErrUnknownPublisher: a declaration names a publisher that is not registered.
	ErrUnknownPublisher = errors.New("unknown publisher")
	// ErrPublisher: a custom publisher failed or emitted an invalid event.
	ErrPublisher = errors.New("publisher error")
	// ErrQueueMissing: the namespace's pgmq queue does not exist (apply the template first).
	ErrQueueMissing = errors.New("queue missing")
	// ErrNotMigrated: the database lacks stepevents' schema, pgmq, or a part
	// a newer migration adds. Nothing changed.
	ErrNotMigrated = errors.New("database not migrated (run: stepevents migrate up)")
	// ErrSuperseded: an outcome recorded under a claim (CompleteClaimedStep,
	// FailClaimedStep) whose attempt is over: the step was released, reset,
	// failed or completed since, maybe claimed again. Nothing was recorded.
	ErrSuperseded = errors.New("attempt is no longer in progress")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("client closed")
)

// stepevents' own SQLSTATEs, raised by its SQL functions.
const (
	codeNotFound          = "SE001"
	codeIllegalTransition = "SE002"
	codeNotReady          = "SE003"
	codeUnknownCondition  = "SE004"
	codeInvalid           = "SE005"
	codeSuperseded        = "SE006"
	codeInvalidText       = "22P02"
	codeUntranslatable    = "22P05"
	codeBadEncoding       = "22021"
	codeCheckViolation    = "23514"
)

// mapError turns database errors into the sentinels above, keeping the
// server's message, which names the step and states. doing says what failed.
func mapError(err error, doing string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", doing, ErrNotFound)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		var sentinel error
		switch pgErr.Code {
		case codeNotFound:
			sentinel = ErrNotFound
		case codeIllegalTransition:
			sentinel = ErrIllegalTransition
		case codeNotReady:
			sentinel = ErrStepNotReady
		case codeSuperseded:
			sentinel = ErrSuperseded
		case codeInvalid, codeUnknownCondition, codeInvalidText, codeUntranslatable, codeBadEncoding, codeCheckViolation:
			sentinel = ErrInvalidInput
		default:
			switch pgmissing.Of(pgErr) {
			case pgmissing.Queue:
				sentinel = ErrQueueMissing
			case pgmissing.PgmqSchema, pgmissing.Stepevents:
				sentinel = ErrNotMigrated
			case pgmissing.PgmqFunction:
				return fmt.Errorf("%s: %s (%s: update the extension, or run stepevents migrate up where pgmq "+
					"is not installed): %w", doing, pgErr.Message, pgmissing.PgmqHint, ErrNotMigrated)
			}
		}
		if sentinel != nil {
			return fmt.Errorf("%s: %s: %w", doing, pgErr.Message, sentinel)
		}
	}
	return fmt.Errorf("%s: %w", doing, err)
}
