package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/consumer"
	"github.com/stepevents/stepevents/events/template"
)

func init() { moreCommands = append(moreCommands, (*app).eventsCmd) }

// consumeBatch is how many messages events consume reads at a time.
const consumeBatch = 10

// Bounds of events' flags: pgmq takes both as 32-bit integers, and beyond
// these a value is a typo rather than an intent.
const (
	maxListLimit         = 1_000_000
	maxVisibilityTimeout = 24 * time.Hour
)

func (a *app) eventsCmd() *cobra.Command {
	cmd := group("events", "List or consume a namespace's durable events (its pgmq queue)")

	var limit int
	list := a.withJSON(&cobra.Command{
		Use:   "list NAMESPACE",
		Short: "List the durable events queued for NAMESPACE, oldest first, without consuming them",
		Long: "List the durable events queued for NAMESPACE (pgmq queue NAMESPACE_domain_events), oldest first.\n" +
			"It reads the queue table with plain SQL, so nothing is consumed, hidden or counted as a read.",
		Args: cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			if limit < 1 || limit > maxListLimit {
				return fmt.Errorf("--limit must be between 1 and %d, got %d", maxListLimit, limit)
			}
			return nil
		},
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return a.listEvents(cmd.Context(), args[0], limit)
		}),
	})
	list.Flags().IntVar(&limit, "limit", 100, "show at most `N` events")

	var opts consumeOptions
	consume := a.withJSON(&cobra.Command{
		Use:   "consume NAMESPACE",
		Short: "Consume NAMESPACE's durable events: print each one, then delete (or archive) it",
		Long: "Consume the durable events queued for NAMESPACE: print each one (a line, or a JSON line with --json)\n" +
			"and delete it, or move it to pgmq's archive table with --archive. It stops after --max events, when\n" +
			"no visible event is left, or on Ctrl-C (events read but not yet printed are given back at once).\n" +
			"If printing stalls (a blocked stdout) until the lease (--vt) of the events read but not yet printed\n" +
			"expires, they stay queued for a later run and it stops with an error.\n" +
			"Messages that are not events are moved to NAMESPACE_domain_events_dlq.",
		Args: cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			if opts.max < 0 {
				return fmt.Errorf("--max must not be negative, got %d", opts.max)
			}
			if opts.vt < time.Second || opts.vt > maxVisibilityTimeout {
				return fmt.Errorf("--vt must be between 1s and %s, got %s", maxVisibilityTimeout, opts.vt)
			}
			return nil
		},
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.consumeEvents(ctx, args[0], opts)
		}),
	})
	consume.Flags().BoolVar(&opts.archive, "archive", false, "archive consumed events (pgmq.a_NAMESPACE_domain_events) instead of deleting them")
	consume.Flags().IntVar(&opts.max, "max", 0, "stop after `N` events (0: until the queue is empty)")
	consume.Flags().DurationVar(&opts.vt, "vt", consumer.DefaultVisibilityTimeout,
		"visibility timeout: how long an event read but not yet acknowledged stays hidden from other consumers")

	cmd.AddCommand(list, consume)
	return cmd
}

// namespaceQueueTable checks ns and that its queue exists, and returns the queue's
// table as a quoted identifier (the namespace is validated before it goes
// anywhere near SQL, then quoted by pgx).
func namespaceQueueTable(ctx context.Context, pool *pgxpool.Pool, ns string) (string, error) {
	table := pgx.Identifier{"pgmq", "q_" + ns + consumer.QueueSuffix}.Sanitize()
	var found *string
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1::text)::text`, table).Scan(&found); err != nil {
		return "", fmt.Errorf("error looking up the queue of namespace %q: %w", ns, err)
	}
	if found == nil {
		return "", fmt.Errorf("namespace %q has no event queue (%s): apply one of its templates first with `stepevents template apply FILE`",
			ns, table)
	}
	return table, nil
}

// checkNamespaceArg validates a NAMESPACE argument.
func checkNamespaceArg(ns string) error {
	if err := template.ValidNamespace(ns); err != nil {
		return fmt.Errorf("invalid namespace: %w", err)
	}
	return nil
}

// queuedJSON is one row of events list --json.
type queuedJSON struct {
	MsgID      int64     `json:"msg_id"`
	EventName  string    `json:"event_name"`
	EventID    string    `json:"event_id"`
	ReadCt     int       `json:"read_ct"`
	EnqueuedAt time.Time `json:"enqueued_at"`
	VT         time.Time `json:"vt"`
}

func (a *app) listEvents(ctx context.Context, ns string, limit int) error {
	if err := checkNamespaceArg(ns); err != nil {
		return err
	}
	pool, err := a.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	table, err := namespaceQueueTable(ctx, pool, ns)
	if err != nil {
		return err
	}
	rows, err := pool.Query(ctx, `SELECT msg_id, coalesce(message->>'event_name', ''), coalesce(message->>'event_id', ''),
		read_ct, enqueued_at, vt, count(*) OVER () FROM `+table+` ORDER BY msg_id LIMIT $1::integer`, limit)
	if err != nil {
		return fmt.Errorf("error listing %s: %w", table, err)
	}
	out := []queuedJSON{}
	total := 0
	for rows.Next() {
		var q queuedJSON
		if err := rows.Scan(&q.MsgID, &q.EventName, &q.EventID, &q.ReadCt, &q.EnqueuedAt, &q.VT, &total); err != nil {
			return fmt.Errorf("error listing %s: %w", table, err)
		}
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("error listing %s: %w", table, err)
	}
	if a.json {
		return a.printJSON(out)
	}
	queue := ns + consumer.QueueSuffix
	if len(out) == 0 {
		fmt.Fprintf(a.stdout, "no events queued in %s\n", queue)
		return nil
	}
	w := a.table()
	fmt.Fprintln(w, "MSG_ID\tEVENT_NAME\tEVENT_ID\tREAD_CT\tENQUEUED_AT")
	for _, q := range out {
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", q.MsgID, dashIfEmpty(q.EventName), dashIfEmpty(q.EventID), q.ReadCt,
			q.EnqueuedAt.UTC().Format(time.RFC3339Nano))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if total > len(out) {
		fmt.Fprintf(a.stdout, "(%d of %d queued events shown; raise --limit for more)\n", len(out), total)
	}
	return nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type consumeOptions struct {
	archive bool
	max     int
	vt      time.Duration
}

// consumedJSON is one line of events consume --json.
type consumedJSON struct {
	MsgID      int64           `json:"msg_id"`
	ReadCt     int             `json:"read_ct"`
	EnqueuedAt time.Time       `json:"enqueued_at"`
	Event      json.RawMessage `json:"event"`
}

func (a *app) consumeEvents(ctx context.Context, ns string, opts consumeOptions) error {
	if err := checkNamespaceArg(ns); err != nil {
		return err
	}
	pool, err := a.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := namespaceQueueTable(ctx, pool, ns); err != nil {
		return err
	}
	batch := consumeBatch
	if opts.max > 0 {
		batch = min(batch, opts.max)
	}
	c, err := consumer.New(pool, consumer.Config{Namespace: ns, VisibilityTimeout: opts.vt, BatchSize: batch,
		Archive: opts.archive, Logger: slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	print := func(_ context.Context, ev events.Event, d consumer.Delivery) error {
		if a.json {
			line, err := json.Marshal(consumedJSON{MsgID: d.MsgID, ReadCt: d.ReadCount, EnqueuedAt: d.EnqueuedAt, Event: d.Message})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%s\n", line)
			return err
		}
		_, err := fmt.Fprintf(a.stdout, "msg %d  %s\n", d.MsgID, eventLine(ev))
		return err
	}
	var total consumer.Result
	for opts.max == 0 || total.Handled < opts.max {
		n := batch
		if opts.max > 0 {
			n = min(n, opts.max-total.Handled) // never take more than is left to consume
		}
		res, err := c.ProcessUpTo(ctx, n, print)
		total.Read += res.Read
		total.Handled += res.Handled
		total.DeadLettered += res.DeadLettered
		total.Failed += res.Failed
		total.Released += res.Released
		total.Expired += res.Expired
		if err != nil && ctx.Err() == nil {
			return err
		}
		// An expired lease means printing stalled (a blocked stdout) for
		// the visibility timeout: reading on would only let more expire.
		if res.Read == 0 || res.Failed > 0 || res.Expired > 0 || ctx.Err() != nil {
			break
		}
	}
	verb := "deleted"
	if opts.archive {
		verb = "archived"
	}
	fmt.Fprintf(a.stderr, "consumed %d event(s) from %s (%s)", total.Handled, c.Queue(), verb)
	if total.DeadLettered > 0 {
		fmt.Fprintf(a.stderr, "; %d message(s) that are not events moved to %s", total.DeadLettered, c.DeadLetterQueue())
	}
	if total.Released > 0 {
		fmt.Fprintf(a.stderr, "; %d given back to the queue unprinted (interrupted)", total.Released)
	}
	if total.Failed > 0 {
		fmt.Fprintf(a.stderr, "; %d left in the queue (could not print them)", total.Failed)
	}
	if total.Expired > 0 {
		fmt.Fprintf(a.stderr, "; %d left in the queue (lease expired)", total.Expired)
	}
	fmt.Fprintln(a.stderr)
	switch {
	case total.Failed > 0 && total.Expired > 0:
		return fmt.Errorf("%d event(s) could not be printed, and %d not before their lease (--vt) expired; they stay queued",
			total.Failed, total.Expired)
	case total.Failed > 0:
		return fmt.Errorf("%d event(s) could not be printed and stay queued", total.Failed)
	case total.Expired > 0:
		return fmt.Errorf("%d event(s) were not printed before their lease (--vt) expired and stay queued", total.Expired)
	}
	return nil
}

// eventLine is the one-line form of an event: name, id, task and step.
func eventLine(ev events.Event) string {
	return fmt.Sprintf("%s  %s  task=%s  step=%s", ev.EventName, ev.EventID, ev.Metadata.TaskUUID, dashIfEmpty(ev.Metadata.StepName))
}
