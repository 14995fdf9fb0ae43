package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/stepevents/stepevents/events"
)

// oneLine flattens an error message to a single line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// printJSON writes v as indented JSON.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table returns a tabwriter on stdout; Flush it when done.
func (a *app) table() *tabwriter.Writer {
	return tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
}

// parseUUID parses a command-line uuid; what names it in the message.
func parseUUID(what, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, fmt.Errorf("invalid %s uuid %q: give a uuid like 0192f0c4-…", what, s)
	}
	return id, nil
}

// parseJSONFlag checks that a flag's value is JSON. Call it from PreRunE:
// an error there is a usage error (exit 2).
// json.Valid, not Unmarshal: a number beyond float64 (1e400) is valid JSON
// that jsonb stores.
func parseJSONFlag(flag, s string) (json.RawMessage, error) {
	if !json.Valid([]byte(s)) {
		var v any
		err := json.Unmarshal([]byte(s), &v) // for the position of the fault
		return nil, fmt.Errorf("--%s is not valid JSON: %v", flag, err)
	}
	return json.RawMessage(s), nil
}

// parseJSONObjectFlag checks that a flag's value is a JSON object.
func parseJSONObjectFlag(flag, s string) (json.RawMessage, error) {
	raw, err := parseJSONFlag(flag, s)
	if err != nil {
		return nil, err
	}
	var kind string
	switch t := bytes.TrimLeft(raw, " \t\r\n"); t[0] {
	case '{':
		return raw, nil
	case '[':
		kind = "an array"
	case '"':
		kind = "a string"
	case 't', 'f':
		kind = "a boolean"
	case 'n':
		kind = "null"
	default:
		kind = "a number"
	}
	return nil, fmt.Errorf("--%s must be a JSON object like '{\"order_id\": \"…\"}', got %s", flag, kind)
}

// explain turns an events error about what (e.g. "step 0192…") into a
// message that says what to fix.
func explain(what string, err error) error {
	switch {
	case errors.Is(err, events.ErrNotFound):
		return fmt.Errorf("%s not found", what)
	case errors.Is(err, events.ErrIllegalTransition):
		return fmt.Errorf("%s: %s; check its state with `stepevents task show`", what, detail(err, events.ErrIllegalTransition))
	case errors.Is(err, events.ErrStepNotReady):
		return fmt.Errorf("%s is not ready (%s)", what, detail(err, events.ErrStepNotReady))
	case errors.Is(err, events.ErrInvalidInput):
		return fmt.Errorf("%s: invalid input: %s", what, detail(err, events.ErrInvalidInput))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// detail is the database's own message for err when there is one (it names
// the states involved), else err's message without the trailing sentinel.
func detail(err, sentinel error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Message != "" {
		return pgErr.Message
	}
	return strings.TrimSuffix(err.Error(), ": "+sentinel.Error())
}

// publishedJSON and skippedJSON are the --json forms of a completion.
type publishedJSON struct {
	Name      string `json:"name"`
	Mode      string `json:"mode"`
	EventID   string `json:"event_id"`
	Publisher string `json:"publisher,omitempty"`
	Queue     string `json:"queue,omitempty"`
	MsgID     int64  `json:"msg_id,omitempty"`
}

type skippedJSON struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

type completionJSON struct {
	StepUUID    string          `json:"step_uuid"`
	State       string          `json:"state"`
	Succeeded   bool            `json:"succeeded"`
	IsRetryable *bool           `json:"is_retryable,omitempty"`
	Published   []publishedJSON `json:"published"`
	Skipped     []skippedJSON   `json:"skipped"`
	Errors      []string        `json:"errors,omitempty"`
}

// printCompletion prints what a complete or fail did.
func (a *app) printCompletion(c *events.Completion) error {
	out := completionJSON{StepUUID: c.Step.StepUUID.String(), State: c.Step.State, Succeeded: c.Succeeded,
		IsRetryable: c.IsRetryable, Published: []publishedJSON{}, Skipped: []skippedJSON{}}
	for _, p := range c.Published {
		out.Published = append(out.Published, publishedJSON{Name: p.Name, Mode: string(p.Mode),
			EventID: p.EventID.String(), Publisher: p.Publisher, Queue: p.Queue, MsgID: p.MsgID})
	}
	for _, s := range c.Skipped {
		out.Skipped = append(out.Skipped, skippedJSON{Name: s.Name, Reason: s.Reason, Detail: s.Detail})
	}
	for _, e := range c.Errors {
		out.Errors = append(out.Errors, oneLine(e))
	}
	if a.json {
		return a.printJSON(out)
	}
	fmt.Fprintf(a.stdout, "step %s: %s\n", out.StepUUID, out.State)
	if len(out.Published) > 0 {
		fmt.Fprintln(a.stdout, "published:")
		w := a.table()
		fmt.Fprintln(w, "  NAME\tMODE\tEVENT_ID\tQUEUE\tMSG_ID")
		for _, p := range out.Published {
			q, id := "-", "-"
			if p.Queue != "" {
				q, id = p.Queue, fmt.Sprint(p.MsgID)
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", p.Name, p.Mode, p.EventID, q, id)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(a.stdout, "published: none")
	}
	if len(out.Skipped) > 0 {
		fmt.Fprintln(a.stdout, "skipped:")
		w := a.table()
		fmt.Fprintln(w, "  NAME\tREASON\tDETAIL")
		for _, s := range out.Skipped {
			d := s.Detail
			if d == "" {
				d = "-"
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\n", s.Name, s.Reason, d)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	for _, e := range out.Errors {
		fmt.Fprintf(a.stdout, "routing error: %s\n", e)
	}
	return nil
}

// withJSON adds --json to a command that prints data.
func (a *app) withJSON(cmd *cobra.Command) *cobra.Command {
	cmd.Flags().BoolVar(&a.json, "json", false, "print JSON")
	return cmd
}
