package events

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events/template"
)

// CreateTaskParams names the template and carries the task's input.
type CreateTaskParams struct {
	Namespace, Name string
	// Version "" picks the highest applied version.
	Version string
	// Context is the task input; it must satisfy the template's input_schema.
	Context json.RawMessage
	// CorrelationID defaults to the task uuid.
	CorrelationID uuid.UUID
}

func (p CreateTaskParams) ref() string {
	v := p.Version
	if v == "" {
		v = "latest"
	}
	return fmt.Sprintf("%s/%s@%s", p.Namespace, p.Name, v)
}

// CreateTask creates a task with its steps and dependency edges in one
// transaction, after validating its context against the template's
// input_schema. It returns the task uuid (a UUIDv7).
func CreateTask(ctx context.Context, dbtx Executor, p CreateTaskParams) (uuid.UUID, error) {
	if err := template.ValidNamespace(p.Namespace); err != nil {
		return uuid.Nil, fmt.Errorf("error creating task from %s: %w: %w", p.ref(), err, ErrInvalidInput)
	}
	q := db.New()
	var version *string
	if p.Version != "" {
		version = &p.Version
	}
	tpl, err := q.GetTemplateInputSchema(ctx, dbtx, db.GetTemplateInputSchemaParams{
		Namespace: p.Namespace, Name: p.Name, Version: version})
	if err != nil {
		return uuid.Nil, mapError(err, "error creating task from template "+p.ref())
	}
	ctxJSON := p.Context
	if len(ctxJSON) == 0 {
		ctxJSON = json.RawMessage(`{}`)
	}
	if !json.Valid(ctxJSON) {
		return uuid.Nil, fmt.Errorf("error creating task from %s: context is not valid JSON: %w", p.ref(), ErrInvalidInput)
	}
	if len(tpl.InputSchema) > 0 {
		schema, err := template.CompileSchema(tpl.InputSchema)
		if err != nil {
			return uuid.Nil, fmt.Errorf("error compiling input_schema of %s: %w", p.ref(), err)
		}
		if v := schema.Validate(ctxJSON); len(v) > 0 {
			return uuid.Nil, fmt.Errorf("error creating task from %s: context does not match input_schema: %s: %w",
				p.ref(), joinViolations(v), ErrInvalidInput)
		}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, fmt.Errorf("error generating task uuid: %w", err)
	}
	var corr *uuid.UUID
	if p.CorrelationID != uuid.Nil {
		corr = &p.CorrelationID
	}
	// The exact version whose input_schema was checked, even when "latest"
	// was asked and another version is applied meanwhile.
	_, err = q.CreateTask(ctx, dbtx, db.CreateTaskParams{Namespace: p.Namespace, Name: p.Name, Version: &tpl.Version,
		Context: ctxJSON, TaskUuid: id, CorrelationID: corr})
	if err != nil {
		return uuid.Nil, mapError(err, "error creating task from template "+p.ref())
	}
	return id, nil
}

// CreateTask is the package-level CreateTask in its own transaction.
func (c *Client) CreateTask(ctx context.Context, p CreateTaskParams) (uuid.UUID, error) {
	var id uuid.UUID
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var err error
		id, err = CreateTask(ctx, tx, p)
		return err
	})
	return id, err
}

// GetTask returns a task.
func GetTask(ctx context.Context, dbtx Executor, taskUUID uuid.UUID) (Task, error) {
	row, err := db.New().GetTask(ctx, dbtx, taskUUID)
	if err != nil {
		return Task{}, mapError(err, fmt.Sprintf("error reading task %s", taskUUID))
	}
	return taskFromRow(row), nil
}

// TaskSteps returns a task's steps in template order.
func TaskSteps(ctx context.Context, dbtx Executor, taskUUID uuid.UUID) ([]Step, error) {
	rows, err := db.New().ListTaskSteps(ctx, dbtx, taskUUID)
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("error reading steps of task %s", taskUUID))
	}
	if len(rows) == 0 {
		if _, err := GetTask(ctx, dbtx, taskUUID); err != nil {
			return nil, err
		}
	}
	out := make([]Step, 0, len(rows))
	for _, r := range rows {
		out = append(out, stepFromRow(r))
	}
	return out, nil
}

func joinViolations(vs []template.Violation) string {
	var b []byte
	for i, v := range vs {
		if i > 0 {
			b = append(b, "; "...)
		}
		b = append(b, v.String()...)
	}
	return string(b)
}
