package template_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events/template"
)

func load(t *testing.T, src string, opts ...template.Option) *template.Template {
	t.Helper()
	tpl, err := template.Load("t.yaml", []byte(src), opts...)
	require.NoError(t, err)
	return tpl
}

func TestWarningsForAcceptedButUnusedKeys(t *testing.T) {
	tpl := load(t, `name: orders
namespace_name: orders
version: 1.0.0
metadata: {author: me}
domain_events:
  - name: order.created
lifecycle: {max_duration_minutes: 10}
system_dependencies: {primary: default}
steps:
  - name: validate
    type: standard
    system_dependency: default
    result_schema: {type: object}
    batch_config: {batch_size: 10}
    handler:
      callable: orders.validate
      method: call
      resolver: registry
      initialization: {timeout: 5}
    publishes_events:
      - name: order.validated
        description: The order is valid
        delivery_mode: fast
        durable_redact: [/card]
  - name: charge
    step_type: standard
    handler: {callable: orders.charge}
environments:
  test:
    steps:
      - name: charge
        handler: {initialization: {sandbox: true}}
`)
	var got []string
	for _, w := range tpl.Warnings {
		got = append(got, w.String())
	}
	const ignored = "is accepted for compatibility with the original format but ignored by stepevents"
	assert.Equal(t, []string{
		`t.yaml:4:1: metadata: key "metadata" ` + ignored,
		`t.yaml:5:1: domain_events: key "domain_events" ` + ignored + `; task-level events are never published, declare them under steps[].publishes_events`,
		`t.yaml:7:1: lifecycle: key "lifecycle" ` + ignored,
		`t.yaml:8:1: system_dependencies: key "system_dependencies" ` + ignored,
		`t.yaml:11:5: steps[0].type: key "type" ` + ignored + `; every step runs as a standard step`,
		`t.yaml:12:5: steps[0].system_dependency: key "system_dependency" ` + ignored,
		`t.yaml:13:5: steps[0].result_schema: key "result_schema" ` + ignored + `; use publishes_events[].schema to validate payloads`,
		`t.yaml:14:5: steps[0].batch_config: key "batch_config" ` + ignored + `; batch steps are not supported`,
		`t.yaml:17:7: steps[0].handler.method: key "method" ` + ignored,
		`t.yaml:18:7: steps[0].handler.resolver: key "resolver" ` + ignored,
		`t.yaml:19:7: steps[0].handler.initialization: key "initialization" ` + ignored,
		`t.yaml:24:9: steps[0].publishes_events[0].durable_redact: durable_redact has no effect: delivery_mode "fast" writes no durable copy`,
		`t.yaml:26:5: steps[1].step_type: key "step_type" ` + ignored + `; every step runs as a standard step`,
		`t.yaml:32:9: environments.test.steps[0].handler: key "handler" ` + ignored + `; handlers take no initialization in stepevents`,
	}, got)
}

func TestDefaults(t *testing.T) {
	tpl := load(t, `name: orders
namespace_name: orders
version: 1.0.0
steps:
  - name: no_retry_block
    handler: {callable: a}
    publishes_events:
      - name: order.done
        description: defaults only
  - name: partial_retry_block
    handler: {callable: b}
    retry: {max_attempts: 7}
  - name: null_values
    handler: {callable: c}
    retry:
    dependencies:
    publishes_events:
    timeout_seconds:
  - name: not_retryable
    handler: {callable: d}
    retry: {retryable: false}
    timeout_seconds: 30
`)
	def := template.DefaultRetry()
	assert.Equal(t, template.Retry{Retryable: true, MaxAttempts: 3, Backoff: template.BackoffExponential, BackoffBaseMS: 1000, MaxBackoffMS: 30000}, def)
	assert.Equal(t, def, tpl.Steps[0].Retry)
	partial := def
	partial.MaxAttempts = 7
	assert.Equal(t, partial, tpl.Steps[1].Retry)
	assert.Equal(t, def, tpl.Steps[2].Retry)
	assert.Empty(t, tpl.Steps[2].Dependencies)
	assert.Empty(t, tpl.Steps[2].Events)
	assert.Equal(t, 0, tpl.Steps[2].TimeoutSeconds)
	nr := def
	nr.Retryable = false // still one attempt; max_attempts keeps its default
	assert.Equal(t, nr, tpl.Steps[3].Retry)
	assert.Equal(t, 30, tpl.Steps[3].TimeoutSeconds)

	ev := tpl.Steps[0].Events[0]
	assert.Equal(t, template.ConditionSuccess, ev.Condition)
	assert.Equal(t, template.DeliveryDurable, ev.DeliveryMode)
	assert.Equal(t, "", ev.Publisher)
	assert.Nil(t, ev.Schema)
	assert.Nil(t, ev.CompiledSchema)
	assert.Nil(t, ev.ValidatePayload(map[string]any{"anything": true}), "no schema accepts everything")
	assert.Nil(t, tpl.InputSchema)
	assert.Nil(t, tpl.CompiledInputSchema)
	assert.Empty(t, tpl.Warnings)
}

const overrideSrc = `name: orders
namespace_name: orders
version: 1.0.0
steps:
  - name: charge
    handler: {callable: orders.charge}
    timeout_seconds: 60
    retry:
      max_attempts: 5
      backoff: linear
      backoff_base_ms: 2000
      max_backoff_ms: 20000
  - name: ship
    handler: {callable: orders.ship}
    depends_on: [charge]
environments:
  test:
    steps:
      - name: charge
        timeout_seconds: 5
        retry: {max_attempts: 1}
      - name: ship
        retry: {backoff: none, max_backoff_ms: 1000}
  production:
    steps:
      - name: charge
        retry: {retryable: false}
`

// TestEnvironmentOverrideMergesRetry pins the documented semantics: retry
// keys merge over the base step's resolved policy; timeout_seconds replaces.
func TestEnvironmentOverrideMergesRetry(t *testing.T) {
	base := load(t, overrideSrc)
	assert.Equal(t, "", base.Environment)
	assert.Equal(t, template.Retry{Retryable: true, MaxAttempts: 5, Backoff: template.BackoffLinear, BackoffBaseMS: 2000, MaxBackoffMS: 20000}, base.Steps[0].Retry)
	assert.Equal(t, 60, base.Steps[0].TimeoutSeconds)
	assert.Equal(t, template.DefaultRetry(), base.Steps[1].Retry)

	test := load(t, overrideSrc, template.WithEnvironment("test"))
	assert.Equal(t, "test", test.Environment)
	assert.Equal(t, template.Retry{Retryable: true, MaxAttempts: 1, Backoff: template.BackoffLinear, BackoffBaseMS: 2000, MaxBackoffMS: 20000}, test.Steps[0].Retry,
		"only max_attempts changes; the original would have reset backoff to defaults")
	assert.Equal(t, 5, test.Steps[0].TimeoutSeconds)
	assert.Equal(t, template.Retry{Retryable: true, MaxAttempts: 3, Backoff: template.BackoffNone, BackoffBaseMS: 1000, MaxBackoffMS: 1000}, test.Steps[1].Retry,
		"merged over defaults when the base step has no retry block")

	prod := load(t, overrideSrc, template.WithEnvironment("production"))
	assert.Equal(t, template.Retry{Retryable: false, MaxAttempts: 5, Backoff: template.BackoffLinear, BackoffBaseMS: 2000, MaxBackoffMS: 20000}, prod.Steps[0].Retry)
	assert.Equal(t, 60, prod.Steps[0].TimeoutSeconds)

	other := load(t, overrideSrc, template.WithEnvironment("staging"))
	assert.Equal(t, "", other.Environment, "an environment the template does not mention applies nothing")
	assert.Equal(t, base.Steps, other.Steps)

	// The stored definition carries the merged blocks too.
	var def struct {
		Steps []struct {
			TimeoutSeconds int            `json:"timeout_seconds"`
			Retry          map[string]any `json:"retry"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal(test.Definition, &def))
	assert.Equal(t, 5, def.Steps[0].TimeoutSeconds)
	assert.Equal(t, map[string]any{"max_attempts": 1.0, "backoff": "linear", "backoff_base_ms": 2000.0, "max_backoff_ms": 20000.0}, def.Steps[0].Retry)
	assert.Equal(t, map[string]any{"backoff": "none", "max_backoff_ms": 1000.0}, def.Steps[1].Retry)
}

func TestEnvironmentsValidatedEvenWhenNotSelected(t *testing.T) {
	_, err := template.Load("t.yaml", []byte(`name: orders
namespace_name: orders
version: 1.0.0
steps:
  - name: charge
    handler: {callable: orders.charge}
    retry: {backoff_base_ms: 5000}
environments:
  test: ~
  staging:
    steps:
      - name: charge
        retry: {max_backoff_ms: 4000, limit: 2}
        timeout_seconds: "10"
      - retry: {max_attempts: 2}
  production:
    steps: charge
`), template.WithEnvironment("test"))
	require.Error(t, err)
	assert.Equal(t, `t.yaml:13:33: environments.staging.steps[0].retry.max_backoff_ms: max_backoff_ms (4000) must be >= backoff_base_ms (5000)
t.yaml:13:39: environments.staging.steps[0].retry.limit: unknown key "limit": the legacy retry.limit is not supported (the original silently ignored it); use max_attempts, which counts every attempt including the first
t.yaml:14:26: environments.staging.steps[0].timeout_seconds: expected an integer, got string "10"
t.yaml:15:9: environments.staging.steps[1].name: missing required key "name": the name of the step to override
t.yaml:17:12: environments.production.steps: expected a list of step overrides, got string "charge"`, err.Error())
}

func TestProblemFormat(t *testing.T) {
	p := template.Problem{File: "a.yaml", Line: 3, Column: 7, Path: "steps[1].publishes_events[0].condition", Message: "bad"}
	assert.Equal(t, "a.yaml:3:7: steps[1].publishes_events[0].condition: bad", p.String())
	e := &template.Error{Problems: []template.Problem{p, {File: "a.yaml", Line: 4, Column: 1, Path: "x", Message: "worse"}}}
	assert.Equal(t, "a.yaml:3:7: steps[1].publishes_events[0].condition: bad\na.yaml:4:1: x: worse", e.Error())
}

func TestLoadFileMissing(t *testing.T) {
	_, err := template.LoadFile("does/not/exist.yaml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does/not/exist.yaml")
}

// TestDependencyPathsKeepListIndexes checks paths index the written list
// even when earlier entries were rejected.
func TestDependencyPathsKeepListIndexes(t *testing.T) {
	_, err := template.Load("t.yaml", []byte(`name: orders
namespace_name: orders
version: 1.0.0
steps:
  - name: a
    handler: {callable: a}
    dependencies: [1, "", b, zz, a]
`))
	require.Error(t, err)
	assert.Equal(t, `t.yaml:7:20: steps[0].dependencies[0]: expected a string, got integer 1
t.yaml:7:23: steps[0].dependencies[1]: must not be empty
t.yaml:7:27: steps[0].dependencies[2]: unknown dependency "b"; steps in this template: a
t.yaml:7:30: steps[0].dependencies[3]: unknown dependency "zz"; steps in this template: a
t.yaml:7:34: steps[0].dependencies[4]: step "a" depends on itself`, err.Error())
}
