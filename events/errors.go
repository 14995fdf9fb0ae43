package events

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	codeUndefinedTable    = "42P01"
	codeUndefinedSchema   = "3F000"
	codeUndefinedFunction = "42883"
	codeUndefinedColumn   = "42703"
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
		case codeUndefinedTable, codeUndefinedSchema, codeUndefinedFunction, codeUndefinedColumn:
			sentinel = missingObject(pgErr)
			if errors.Is(sentinel, ErrNotMigrated) && strings.Contains(pgErr.Message, "function pgmq.") {
				return fmt.Errorf("%s: %s (stepevents needs pgmq 1.5 or later: update the extension, or run "+
					"stepevents migrate up where pgmq is not installed): %w", doing, pgErr.Message, ErrNotMigrated)
			}
		}
		if sentinel != nil {
			return fmt.Errorf("%s: %s: %w", doing, pgErr.Message, sentinel)
		}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// missingObject tells a namespace queue not created yet (a pgmq queue
// table) from a database that is not migrated (stepevents' or pgmq's own
// schema, tables or functions absent). Errors about other objects, such as
// a user's own table in their transaction, are the caller's own.
func missingObject(pgErr *pgconn.PgError) error {
	msg := pgErr.Message
	switch {
	case pgErr.Code == codeUndefinedTable && strings.Contains(msg, `"pgmq.q_`):
		return ErrQueueMissing
	case strings.Contains(msg, `schema "stepevents"`), strings.Contains(msg, `schema "pgmq"`),
		strings.Contains(msg, `relation "stepevents.`), strings.Contains(msg, `relation "pgmq.`),
		strings.Contains(msg, "function stepevents."), strings.Contains(msg, "function pgmq."):
		return ErrNotMigrated
	case pgErr.Code == codeUndefinedColumn:
		// PostgreSQL names no table here; in stepevents' own statements a
		// missing column is one a newer migration adds.
		return ErrNotMigrated
	}
	return nil
}
