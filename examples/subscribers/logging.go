// Package subscribers holds example fast-event subscribers for an
// events.Bus: a structured logger, an in-memory metrics collector, and a
// Prometheus collector for the router and bus counters.
package subscribers

import (
	"context"
	"log/slog"

	"github.com/stepevents/stepevents/events"
)

// NewLoggingSubscriber returns a handler that logs every event it receives
// at Info, with the attributes an operator filters on: event_name,
// event_id, task_uuid, step_name and namespace (never the payload, which may
// hold business data). prefix starts the message, e.g. "payments" gives
// "payments: event received".
func NewLoggingSubscriber(logger *slog.Logger, prefix string) events.HandlerFunc {
	msg := "event received"
	if prefix != "" {
		msg = prefix + ": " + msg
	}
	return func(ctx context.Context, ev events.Event) error {
		logger.LogAttrs(ctx, slog.LevelInfo, msg,
			slog.String("event_name", ev.EventName),
			slog.String("event_id", ev.EventID.String()),
			slog.String("task_uuid", ev.Metadata.TaskUUID.String()),
			slog.String("step_name", ev.Metadata.StepName),
			slog.String("namespace", ev.Metadata.Namespace),
			slog.Bool("success", ev.Payload.ExecutionResult.Success))
		return nil
	}
}
