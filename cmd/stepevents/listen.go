package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/stepevents/stepevents/events"
)

func init() { moreCommands = append(moreCommands, (*app).listenCmd) }

// listenQueue is the bus queue of the printing subscription: printing is
// fast, so it only fills when stdout blocks; then events are dropped and
// counted rather than stalling the LISTEN connection.
const listenQueue = 16384

// listenStopTimeout bounds stopping the listener and draining the bus on exit.
const listenStopTimeout = 5 * time.Second

func (a *app) listenCmd() *cobra.Command {
	var channel string
	var patterns []events.Pattern
	cmd := a.withJSON(&cobra.Command{
		Use:   "listen [PATTERN…]",
		Short: "Print fast events as they arrive, until interrupted",
		Long: "Print every fast event (delivery_mode fast or broadcast) whose name matches a PATTERN, one line each\n" +
			"(name, event_id, task, step) or one JSON object per line with --json, until Ctrl-C.\n" +
			"Patterns: \"*\" (default) matches every event; otherwise dot-separated segments where \"*\" matches one\n" +
			"segment and a final \">\" one or more, e.g. \"payment.*\" or \"payment.>\".\n" +
			"Fast events are at-most-once, and a \"gap\" line says where some were lost, and why: \"reconnected\"\n" +
			"(anything sent while the connection was down), \"overflow\" (notifications dropped because the listener\n" +
			"fell behind) or \"unresolved\" (oversized events whose stashed copy could not be fetched).\n" +
			"Durable events are in the queue: see `stepevents events list`.",
		Args: func(_ *cobra.Command, args []string) error {
			if err := events.ValidChannel(channel); err != nil {
				return fmt.Errorf("invalid --channel: %s", strings.TrimSuffix(err.Error(), ": "+events.ErrInvalidInput.Error()))
			}
			if len(args) == 0 {
				args = []string{"*"}
			}
			patterns = patterns[:0]
			for _, s := range args {
				p, err := events.ParsePattern(s)
				if err != nil {
					return fmt.Errorf("%s", strings.TrimSuffix(err.Error(), ": "+events.ErrInvalidInput.Error()))
				}
				patterns = append(patterns, p)
			}
			return nil
		},
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.listen(ctx, channel, patterns)
		}),
	})
	cmd.Flags().StringVar(&channel, "channel", events.DefaultChannel, "NOTIFY channel the publishers use")
	return cmd
}

// listenedJSON is one line of listen --json: an event or a gap signal.
type listenedJSON struct {
	Event *events.Event     `json:"event,omitempty"`
	Gap   *events.GapSignal `json:"gap,omitempty"`
}

// gapLine is the line listen prints for a gap: what was lost, and why.
func gapLine(g events.GapSignal) string {
	var s, lost string
	switch g.Kind {
	case events.GapReconnect:
		return fmt.Sprintf("gap: reconnected to channel %s after %s (reconnect %d); fast events sent meanwhile are lost",
			g.Channel, g.ReconnectedAt.Sub(g.DisconnectedAt).Round(time.Millisecond), g.Reconnects)
	case events.GapOverflow:
		s = fmt.Sprintf("gap: overflow on channel %s: %d notification(s) dropped", g.Channel, g.Dropped)
		lost = "the fast events they carried are lost"
	case events.GapUnresolved:
		s = fmt.Sprintf("gap: unresolved on channel %s: %d stashed event(s) could not be fetched", g.Channel, g.Dropped)
		lost = "those fast events are lost"
	default:
		s = fmt.Sprintf("gap: %s on channel %s: %d dropped", g.Kind, g.Channel, g.Dropped)
		lost = "fast events were lost"
	}
	if !g.Since.IsZero() {
		at := " at "
		if g.Kind == events.GapOverflow {
			at = " since " // the first drop
		}
		s += at + g.Since.Local().Format("15:04:05.000")
	}
	if g.Cause != "" {
		s += " (" + g.Cause + ")"
	}
	return s + "; " + lost
}

func (a *app) listen(ctx context.Context, channel string, patterns []events.Pattern) error {
	pool, err := a.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bus := events.NewBus(events.BusConfig{Logger: logger})
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenStopTimeout)
		defer cancel()
		_, _ = bus.Close(cctx)
	}()

	var mu sync.Mutex // the subscription's goroutine and the final summary both write
	printed := 0
	writeLine := func(v listenedJSON, plain string) {
		mu.Lock()
		defer mu.Unlock()
		if a.json {
			line, err := json.Marshal(v)
			if err != nil {
				return
			}
			fmt.Fprintf(a.stdout, "%s\n", line)
		} else {
			fmt.Fprintln(a.stdout, plain)
		}
		if v.Event != nil {
			printed++
		}
	}
	_, err = bus.Subscribe("*", func(_ context.Context, ev events.Event) error {
		for _, p := range patterns {
			if p.Match(ev.EventName) {
				writeLine(listenedJSON{Event: &ev}, eventLine(ev))
				return nil
			}
		}
		return nil
	}, events.WithName("stepevents listen"), events.WithQueueSize(listenQueue),
		events.WithGapHandler(func(g events.GapSignal) { writeLine(listenedJSON{Gap: &g}, gapLine(g)) }))
	if err != nil {
		return fmt.Errorf("error subscribing: %w", err)
	}

	listener, err := events.NewListener(pool, bus, events.ListenerConfig{Channel: channel, Logger: logger})
	if err != nil {
		return fmt.Errorf("invalid --channel: %s", strings.TrimSuffix(err.Error(), ": "+events.ErrInvalidInput.Error()))
	}
	if err := listener.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while connecting
		}
		return fmt.Errorf("cannot listen: %w", err)
	}
	names := make([]string, len(patterns))
	for i, p := range patterns {
		names[i] = fmt.Sprintf("%q", p.String())
	}
	fmt.Fprintf(a.stderr, "listening on channel %s for %s (Ctrl-C to stop)\n", channel, strings.Join(names, ", "))

	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenStopTimeout)
	defer cancel()
	if err := listener.Stop(sctx); err != nil {
		return fmt.Errorf("error stopping the listener: %w", err)
	}
	if _, err := bus.Close(sctx); err != nil {
		return fmt.Errorf("error draining the printer: %w", err)
	}
	dropped := bus.Stats().Dropped
	mu.Lock()
	fmt.Fprintf(a.stderr, "stopped: %d event(s) printed", printed)
	mu.Unlock()
	if dropped > 0 {
		fmt.Fprintf(a.stderr, ", %d dropped (output too slow)", dropped)
	}
	fmt.Fprintln(a.stderr)
	return nil
}
