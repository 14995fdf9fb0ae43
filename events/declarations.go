package events

import (
	"context"
	"fmt"
	"slices"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events/template"
)

// templateDecls holds what routing needs of a template's declarations beyond
// what record_step_result returns: compiled schemas and redactions. A
// template version never changes once applied, so it is cached for good.
type templateDecls struct {
	byKey map[string]declInfo // step + "\x00" + event
	// stepRedact is, per step, the union of its declarations' durable_redact
	// pointers: the step's result is redacted with them wherever it appears
	// in a durable copy, including later steps' dependency_results.
	stepRedact map[string][]string
}

type declInfo struct {
	schema *template.CompiledSchema
	redact []string
}

func (t *templateDecls) lookup(step, event string) declInfo { return t.byKey[step+"\x00"+event] }

func (c *Client) templateDecls(ctx context.Context, tx db.DBTX, templateID int64) (*templateDecls, error) {
	if v, ok := c.decls.Load(templateID); ok {
		return v.(*templateDecls), nil
	}
	rows, err := c.queries.ListTemplateDeclarations(ctx, tx, templateID)
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("error reading event declarations of template %d", templateID))
	}
	t := &templateDecls{byKey: map[string]declInfo{}, stepRedact: map[string][]string{}}
	for _, r := range rows {
		info := declInfo{redact: r.DurableRedact}
		if len(r.Schema) > 0 {
			s, err := template.CompileSchema(r.Schema)
			if err != nil {
				return nil, fmt.Errorf("error compiling schema of %s.%s: %w", r.StepName, r.EventName, err)
			}
			info.schema = s
		}
		t.byKey[r.StepName+"\x00"+r.EventName] = info
		for _, p := range r.DurableRedact {
			if !slices.Contains(t.stepRedact[r.StepName], p) {
				t.stepRedact[r.StepName] = append(t.stepRedact[r.StepName], p)
			}
		}
	}
	c.decls.Store(templateID, t)
	return t, nil
}
