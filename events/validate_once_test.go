package events_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

const severalSchemasTemplate = `
name: several_schemas
namespace_name: several_schemas_ns
version: 1.0.0
steps:
  - name: charge
    handler: {callable: charge}
    publishes_events:
      - name: charge.fast
        description: valid
        delivery_mode: fast
        schema: {type: object, required: [amount], properties: {amount: {type: number, minimum: 0}}}
      - name: charge.durable
        description: invalid, missing currency
        delivery_mode: durable
        schema: {type: object, required: [currency]}
      - name: charge.broadcast
        description: invalid, amount too large and note too long
        delivery_mode: broadcast
        schema: {type: object, properties: {amount: {maximum: 1}, note: {maxLength: 2}}}
      - name: charge.unchecked
        description: no schema
        delivery_mode: durable
`

// TestOnePayloadSeveralSchemas completes a step whose declarations all carry
// the step result (the default publisher) and check it against different
// schemas. The router decodes that payload once and shares the decoded
// value among the schemas; this test pins what sharing must not change:
// each event gets the verdict Validate gives on its own.
func TestOnePayloadSeveralSchemas(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tpl, err := template.Load("several.yaml", []byte(severalSchemasTemplate))
	require.NoError(t, err)
	require.NoError(t, b.client.ApplyTemplate(b.ctx, tpl))
	task, err := b.client.CreateTask(b.ctx, events.CreateTaskParams{Namespace: "several_schemas_ns", Name: "several_schemas"})
	require.NoError(t, err)
	steps, err := events.TaskSteps(b.ctx, b.pool, task)
	require.NoError(t, err)

	result := `{"amount": 5, "note": "<b>"}`
	comp := b.complete(t, steps[0].StepUUID, result)

	var published []string
	for _, p := range comp.Published {
		published = append(published, p.Name)
	}
	skipped := map[string]string{}
	for _, s := range comp.Skipped {
		require.Equal(t, events.SkipInvalidPayload, s.Reason)
		skipped[s.Name] = s.Detail
	}
	want := map[string]string{}
	var wantPublished []string
	for _, d := range tpl.Steps[0].Events {
		if v := d.ValidatePayload(json.RawMessage(result)); len(v) > 0 {
			var detail string
			for i, x := range v {
				if i > 0 {
					detail += "; "
				}
				detail += x.String()
			}
			want[d.Name] = detail
		} else {
			wantPublished = append(wantPublished, d.Name)
		}
	}
	require.Equal(t, []string{"charge.fast", "charge.unchecked"}, wantPublished)
	require.Equal(t, wantPublished, published)
	require.Equal(t, want, skipped)
	require.Len(t, skipped, 2)
}
