package events

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events/template"
)

// TemplateInfo summarises an applied template.
type TemplateInfo struct {
	Namespace, Name, Version, Description string
	Steps, Events                         int
}

// ApplyTemplate stores t (idempotent per namespace, name and version) and
// creates its namespace's queues. It refuses a template naming a publisher
// this client does not register.
func (c *Client) ApplyTemplate(ctx context.Context, t *template.Template) error {
	return pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error { return c.ApplyTemplateTx(ctx, tx, t) })
}

// ApplyTemplateTx is ApplyTemplate in the caller's transaction.
func (c *Client) ApplyTemplateTx(ctx context.Context, tx pgx.Tx, t *template.Template) error {
	var names []string
	for _, s := range t.Steps {
		for _, e := range s.Events {
			if e.Publisher != "" {
				names = append(names, e.Publisher)
			}
		}
	}
	if err := c.checkNames(names); err != nil {
		return fmt.Errorf("error applying template %s/%s@%s: %w", t.Namespace, t.Name, t.Version, err)
	}
	return ApplyTemplateTx(ctx, tx, t)
}

type stepRow struct {
	Name           string   `json:"name"`
	Position       int      `json:"position"`
	Handler        string   `json:"handler"`
	Dependencies   []string `json:"dependencies"`
	Retryable      bool     `json:"retryable"`
	MaxAttempts    int      `json:"max_attempts"`
	Backoff        string   `json:"backoff"`
	BackoffBaseMS  int      `json:"backoff_base_ms"`
	MaxBackoffMS   int      `json:"max_backoff_ms"`
	TimeoutSeconds int      `json:"timeout_seconds"`
}

type eventRow struct {
	StepName      string          `json:"step_name"`
	Position      int             `json:"position"`
	EventName     string          `json:"event_name"`
	Description   string          `json:"description"`
	Condition     string          `json:"condition"`
	DeliveryMode  string          `json:"delivery_mode"`
	Publisher     string          `json:"publisher"`
	Schema        json.RawMessage `json:"schema,omitempty"`
	DurableRedact []string        `json:"durable_redact"`
}

// ApplyTemplateTx stores a loaded template without checking publishers
// against a client (the CLI applies templates for processes it is not).
func ApplyTemplateTx(ctx context.Context, tx pgx.Tx, t *template.Template) error {
	steps := make([]stepRow, 0, len(t.Steps))
	var evs []eventRow
	for i, s := range t.Steps {
		deps := s.Dependencies
		if deps == nil {
			deps = []string{}
		}
		steps = append(steps, stepRow{
			Name: s.Name, Position: i, Handler: s.Handler, Dependencies: deps, Retryable: s.Retry.Retryable,
			MaxAttempts: s.Retry.MaxAttempts, Backoff: string(s.Retry.Backoff), BackoffBaseMS: s.Retry.BackoffBaseMS,
			MaxBackoffMS: s.Retry.MaxBackoffMS, TimeoutSeconds: s.TimeoutSeconds,
		})
		for j, e := range s.Events {
			redact := e.DurableRedact
			if redact == nil {
				redact = []string{}
			}
			evs = append(evs, eventRow{
				StepName: s.Name, Position: j, EventName: e.Name, Description: e.Description,
				Condition: string(e.Condition), DeliveryMode: string(e.DeliveryMode), Publisher: e.Publisher,
				Schema: e.Schema, DurableRedact: redact,
			})
		}
	}
	stepsJSON, err := json.Marshal(steps)
	if err != nil {
		return fmt.Errorf("error encoding steps: %w", err)
	}
	if evs == nil {
		evs = []eventRow{}
	}
	eventsJSON, err := json.Marshal(evs)
	if err != nil {
		return fmt.Errorf("error encoding event declarations: %w", err)
	}
	q := db.New()
	_, err = q.ApplyTemplate(ctx, tx, db.ApplyTemplateParams{
		Namespace: t.Namespace, Name: t.Name, Version: t.Version, Description: t.Description,
		InputSchema: t.InputSchema, Definition: t.Definition, Steps: stepsJSON, Events: eventsJSON,
	})
	if err != nil {
		return mapError(err, fmt.Sprintf("error applying template %s/%s@%s", t.Namespace, t.Name, t.Version))
	}
	return nil
}

// LockTemplatesTx takes, in tx, the lock that applying each template takes,
// all of them first and in (namespace, name, version) order. Applying
// several templates in one transaction (sorted the same way) after it
// cannot deadlock with another apply: otherwise one could hold a
// namespace's queue lock (pgmq.create's) while it waits for a template
// lock that the other holds while it waits for that queue lock.
func LockTemplatesTx(ctx context.Context, tx pgx.Tx, tpls []*template.Template) error {
	sorted := slices.Clone(tpls)
	SortTemplates(sorted)
	q := db.New()
	for _, t := range sorted {
		if err := q.LockTemplate(ctx, tx, db.LockTemplateParams{Namespace: t.Namespace, Name: t.Name, Version: t.Version}); err != nil {
			return mapError(err, fmt.Sprintf("error locking template %s/%s@%s", t.Namespace, t.Name, t.Version))
		}
	}
	return nil
}

// SortTemplates orders tpls by namespace, name and version: the order
// LockTemplatesTx locks them in, and to apply them in.
func SortTemplates(tpls []*template.Template) {
	slices.SortStableFunc(tpls, func(x, y *template.Template) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name), cmp.Compare(x.Version, y.Version))
	})
}

// ListTemplates lists applied templates.
func ListTemplates(ctx context.Context, dbtx Executor) ([]TemplateInfo, error) {
	rows, err := db.New().ListTemplates(ctx, dbtx)
	if err != nil {
		return nil, mapError(err, "error listing templates")
	}
	out := make([]TemplateInfo, 0, len(rows))
	for _, r := range rows {
		out = append(out, TemplateInfo{Namespace: r.Namespace, Name: r.Name, Version: r.Version,
			Description: r.Description, Steps: int(r.StepCount), Events: int(r.EventCount)})
	}
	return out, nil
}

// ApplyTemplate stores t in its own transaction without checking publishers
// against a client (the CLI applies templates for processes it is not).
func ApplyTemplate(ctx context.Context, pool *pgxpool.Pool, t *template.Template) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return ApplyTemplateTx(ctx, tx, t) })
}
