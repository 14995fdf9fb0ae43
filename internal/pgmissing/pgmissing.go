// Package pgmissing tells what a PostgreSQL "does not exist" error is
// missing: a namespace's pgmq queue (its template not applied yet), pgmq
// itself (not installed, or too old), or stepevents' own objects (the
// database not migrated). The events package and the consumer map these to
// ErrQueueMissing and ErrNotMigrated from this one set of rules.
package pgmissing

import (
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Kind is what an error says is missing.
type Kind uint8

const (
	// Other: not a missing-object error, or an object that is not
	// stepevents' or pgmq's (a user's own table in their transaction).
	Other Kind = iota
	// Queue: a pgmq queue table (pgmq.q_*).
	Queue
	// PgmqSchema: pgmq's schema or one of its tables other than a queue.
	PgmqSchema
	// PgmqFunction: a pgmq function; where the schema exists, pgmq is older
	// than stepevents needs (PgmqHint).
	PgmqFunction
	// Stepevents: stepevents' schema, a table or function of it, or a
	// column (PostgreSQL names no table for those; in stepevents' own
	// statements it is one a newer migration adds).
	Stepevents
)

// PgmqHint says which pgmq stepevents needs, for PgmqFunction errors.
const PgmqHint = "stepevents needs pgmq 1.5 or later"

// Of classifies pgErr by its SQLSTATE and the object its message names.
func Of(pgErr *pgconn.PgError) Kind {
	msg := pgErr.Message
	switch pgErr.Code {
	case "42P01": // undefined_table
		switch {
		case strings.Contains(msg, `relation "pgmq.q_`):
			return Queue
		case strings.Contains(msg, `relation "pgmq.`):
			return PgmqSchema
		case strings.Contains(msg, `relation "stepevents.`):
			return Stepevents
		}
	case "3F000": // invalid_schema_name
		switch {
		case strings.Contains(msg, `schema "pgmq"`):
			return PgmqSchema
		case strings.Contains(msg, `schema "stepevents"`):
			return Stepevents
		}
	case "42883": // undefined_function
		switch {
		case strings.Contains(msg, "function pgmq."):
			return PgmqFunction
		case strings.Contains(msg, "function stepevents."):
			return Stepevents
		}
	case "42703": // undefined_column
		return Stepevents
	}
	return Other
}
