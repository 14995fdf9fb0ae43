package consumer

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events"
)

// TxHandlerFunc handles one event inside a transaction that also records
// the event as handled (see Idempotent): write through tx, and the writes
// and the record commit together or not at all.
type TxHandlerFunc func(ctx context.Context, tx pgx.Tx, ev events.Event, d Delivery) error

// HandledOnce records in stepevents.consumed_events that consumer handled
// eventID, and reports whether this is the first time. Call it in the
// transaction that makes the handler's own writes: if that transaction
// rolls back the record goes with it and a redelivery handles the event
// again; if it commits, every later delivery sees first == false. A
// concurrent call for the same pair waits for the first transaction to end.
// Through a pool (no transaction) the record and the writes are separate.
func HandledOnce(ctx context.Context, tx events.Executor, consumer string, eventID uuid.UUID) (first bool, err error) {
	if consumer == "" || eventID == uuid.Nil {
		return false, fmt.Errorf("stepevents consumer: HandledOnce needs a consumer name and an event id (got %q, %s): %w",
			consumer, eventID, events.ErrInvalidInput)
	}
	n, err := db.New().MarkEventHandled(ctx, tx, db.MarkEventHandledParams{Consumer: consumer, EventID: eventID})
	if err != nil {
		return false, fmt.Errorf("stepevents consumer: error recording event %s as handled by %q: %w", eventID, consumer, err)
	}
	return n == 1, nil
}

// Idempotent wraps handler so that each event is handled once per consumer
// name, however often it is delivered: in one transaction it records the
// event id (HandledOnce) and runs handler; a redelivered event returns
// ErrDuplicate without calling handler, and the message is acknowledged.
//
// The guarantee is effectively-once for database writes made through tx;
// side effects outside it (HTTP calls, e-mails) are at-least-once, since a
// failed commit after them means the event is handled again. Give each
// logical consumer its own stable name. It panics on a nil pool or handler
// or an empty name: a wiring mistake, caught at startup.
func Idempotent(pool *pgxpool.Pool, consumer string, handler TxHandlerFunc) HandlerFunc {
	if pool == nil || handler == nil || consumer == "" {
		panic("stepevents consumer: Idempotent needs a pool, a consumer name and a handler")
	}
	return func(ctx context.Context, ev events.Event, d Delivery) error {
		duplicate := false
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			first, err := HandledOnce(ctx, tx, consumer, ev.EventID)
			if err != nil {
				return err
			}
			if !first {
				duplicate = true
				return nil
			}
			return handler(ctx, tx, ev, d)
		})
		if err != nil {
			return err
		}
		if duplicate {
			return fmt.Errorf("event %s (%s) by %q: %w", ev.EventID, ev.EventName, consumer, ErrDuplicate)
		}
		return nil
	}
}
