package template_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events/template"
)

const badDir = "../../test/templates/bad/"

// badFixtures maps each file in test/templates/bad to the exact problems
// Load must report, in order. Each fixture holds one fault, except
// many_faults.yaml, which checks that every fault is reported in one pass.
var badFixtures = map[string][]string{
	"octal_integer.yaml": {
		`../../test/templates/bad/octal_integer.yaml:7:27: steps[0].retry.max_attempts: integer 010 is not written in decimal (YAML reads a leading 0 as another base); write it without the leading 0`,
	},
	"leading_zero_integer.yaml": {
		`../../test/templates/bad/leading_zero_integer.yaml:7:27: steps[0].retry.max_attempts: integer 09 is not written in decimal (YAML reads a leading 0 as another base); write it without the leading 0`,
	},
	"version_part_too_large.yaml": {
		`../../test/templates/bad/version_part_too_large.yaml:3:10: version: version "1.0.99999999999" has a part larger than 2147483647`,
	},
	"tab_indent.yaml": {
		`../../test/templates/bad/tab_indent.yaml:7:1: (document): YAML syntax error: found character that cannot start any token`,
	},
	"nested_mapping.yaml": {
		`../../test/templates/bad/nested_mapping.yaml:6:24: (document): YAML syntax error: mapping values are not allowed in this context`,
	},
	"invalid_utf8.yaml": {
		`../../test/templates/bad/invalid_utf8.yaml:6:21: (document): invalid UTF-8: byte 0xe9 cannot be read as text; save the template as UTF-8`,
	},
	"huge_integer.yaml": {
		`../../test/templates/bad/huge_integer.yaml:7:27: steps[0].retry.max_attempts: integer 99999999999999999999999 is out of range`,
	},
	"backoff_base_out_of_range.yaml": {
		`../../test/templates/bad/backoff_base_out_of_range.yaml:8:24: steps[0].retry.backoff_base_ms: backoff_base_ms is 50; allowed range is 100 to 3600000`,
	},
	"bad_input_schema.yaml": {
		`../../test/templates/bad/bad_input_schema.yaml:9:18: input_schema: invalid JSON Schema: at "/properties/order_id/minLength": minimum: got -1, want 0`,
	},
	"bad_publisher_name.yaml": {
		`../../test/templates/bad/bad_publisher_name.yaml:10:20: steps[0].publishes_events[0].publisher: publisher "Payment-Publisher" is not a valid name: use identifiers ([A-Za-z_][A-Za-z0-9_]*) separated by "::" or ".", e.g. "PaymentEventPublisher"`,
	},
	"bad_redact_pointer.yaml": {
		`../../test/templates/bad/bad_redact_pointer.yaml:11:26: steps[0].publishes_events[0].durable_redact[0]: durable_redact entry "card.number" is not a JSON pointer: it must start with "/", e.g. "/card/number"`,
	},
	"bad_schema.yaml": {
		`../../test/templates/bad/bad_schema.yaml:10:26: steps[0].publishes_events[0].schema: invalid JSON Schema: at "/type": value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'`,
	},
	"bad_version.yaml": {
		`../../test/templates/bad/bad_version.yaml:3:10: version: version "1.0.0-beta" is not MAJOR.MINOR.PATCH (digits only, no leading zeros), e.g. "1.0.0"`,
	},
	"both_dependency_keys.yaml": {
		`../../test/templates/bad/both_dependency_keys.yaml:10:5: steps[1].depends_on: use either "dependencies" or "depends_on" (an alias), not both`,
	},
	"dependency_cycle.yaml": {
		`../../test/templates/bad/dependency_cycle.yaml:7:20: steps[0].dependencies[0]: dependency cycle: a -> c -> b -> a (each step depends on the next)`,
	},
	"duplicate_dependency.yaml": {
		`../../test/templates/bad/duplicate_dependency.yaml:9:30: steps[1].dependencies[1]: duplicate dependency "validate"; first listed at line 9`,
	},
	"duplicate_event.yaml": {
		`../../test/templates/bad/duplicate_event.yaml:10:15: steps[0].publishes_events[1].name: duplicate event "order.validated" in this step; first declared at line 8`,
	},
	"duplicate_step.yaml": {
		`../../test/templates/bad/duplicate_step.yaml:7:11: steps[1].name: duplicate step name "validate"; first defined at line 5`,
	},
	"duplicate_yaml_key.yaml": {
		`../../test/templates/bad/duplicate_yaml_key.yaml:7:5: steps[0].name: duplicate key "name"; first defined at line 5`,
	},
	"empty_event_segment.yaml": {
		`../../test/templates/bad/empty_event_segment.yaml:8:15: steps[0].publishes_events[0].name: event name "order..validated" has an empty segment (leading, trailing or doubled dot)`,
	},
	"empty_file.yaml": {
		`../../test/templates/bad/empty_file.yaml:1:1: (document): empty document: a task template needs name, namespace_name, version and steps`,
	},
	"empty_publisher.yaml": {
		`../../test/templates/bad/empty_publisher.yaml:10:20: steps[0].publishes_events[0].publisher: publisher must not be empty; omit the key to use the default publisher`,
	},
	"empty_steps.yaml": {
		`../../test/templates/bad/empty_steps.yaml:4:8: steps: must list at least one step`,
	},
	"env_override_bad_retry.yaml": {
		`../../test/templates/bad/env_override_bad_retry.yaml:11:31: environments.test.steps[0].retry.max_attempts: max_attempts is 0; allowed range is 1 to 100 (attempts include the first run)`,
	},
	"env_override_delays.yaml": {
		`../../test/templates/bad/env_override_delays.yaml:12:33: environments.production.steps[0].retry.max_backoff_ms: max_backoff_ms (2000) must be >= backoff_base_ms (5000)`,
	},
	"env_override_duplicate.yaml": {
		`../../test/templates/bad/env_override_duplicate.yaml:12:15: environments.test.steps[1].name: step "validate" is already overridden in environment "test" at line 10`,
	},
	"env_override_unknown_step.yaml": {
		`../../test/templates/bad/env_override_unknown_step.yaml:10:15: environments.test.steps[0].name: environment "test" overrides unknown step "charge"; steps in this template: validate`,
	},
	"event_name_too_long.yaml": {
		`../../test/templates/bad/event_name_too_long.yaml:8:15: steps[0].publishes_events[0].name: event name is 256 characters long; at most 255 are allowed`,
	},
	"external_schema_ref.yaml": {
		`../../test/templates/bad/external_schema_ref.yaml:11:11: steps[0].publishes_events[0].schema: invalid JSON Schema: cannot load "https://schemas.example.com/order.json": external references are not allowed; templates must be self-contained`,
	},
	"many_faults.yaml": {
		`../../test/templates/bad/many_faults.yaml:2:17: namespace_name: namespace "Orders" must be lower case (pgmq folds queue names to lower case, so "Orders" and "orders" would collide); use "orders"`,
		`../../test/templates/bad/many_faults.yaml:3:10: version: version "1.0" is not MAJOR.MINOR.PATCH (digits only, no leading zeros), e.g. "1.0.0"`,
		`../../test/templates/bad/many_faults.yaml:7:20: steps[0].dependencies[0]: dependency cycle: validate -> charge -> validate (each step depends on the next)`,
		`../../test/templates/bad/many_faults.yaml:9:7: steps[0].retry.limit: unknown key "limit": the legacy retry.limit is not supported (the original silently ignored it); use max_attempts, which counts every attempt including the first`,
		`../../test/templates/bad/many_faults.yaml:10:16: steps[0].retry.backoff: unknown backoff "fibonacci"; allowed: none, linear, exponential (default)`,
		`../../test/templates/bad/many_faults.yaml:12:15: steps[0].publishes_events[0].name: event name "order.*" contains a wildcard; * and > are only allowed in subscription patterns, not in published names`,
		`../../test/templates/bad/many_faults.yaml:14:20: steps[0].publishes_events[0].condition: unknown condition "sometimes"; allowed: success (default), failure, retryable_failure, permanent_failure, always`,
		`../../test/templates/bad/many_faults.yaml:15:5: steps[1].handler: missing required key "handler": a mapping whose "callable" names the code that runs this step`,
		`../../test/templates/bad/many_faults.yaml:18:21: steps[1].retry.max_attempts: max_attempts is 101; allowed range is 1 to 100 (attempts include the first run)`,
		`../../test/templates/bad/many_faults.yaml:20:9: steps[1].publishes_events[0].description: missing required key "description": say what the event means to its consumers`,
		`../../test/templates/bad/many_faults.yaml:21:24: steps[1].publishes_events[0].delivery_mode: unknown delivery_mode "slow"; allowed: durable (default), fast, broadcast`,
		`../../test/templates/bad/many_faults.yaml:22:20: steps[1].publishes_events[0].publisher: publisher "9lives" is not a valid name: use identifiers ([A-Za-z_][A-Za-z0-9_]*) separated by "::" or ".", e.g. "PaymentEventPublisher"`,
		`../../test/templates/bad/many_faults.yaml:23:24: steps[1].publishes_events[0].schema: invalid JSON Schema: at "/type": value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'`,
		`../../test/templates/bad/many_faults.yaml:24:26: steps[1].publishes_events[0].durable_redact[0]: durable_redact entry "card" is not a JSON pointer: it must start with "/", e.g. "/card/number"`,
		`../../test/templates/bad/many_faults.yaml:25:11: steps[2].name: duplicate step name "charge"; first defined at line 15`,
		`../../test/templates/bad/many_faults.yaml:30:15: environments.test.steps[0].name: environment "test" overrides unknown step "ship"; steps in this template: validate, charge`,
	},
	"max_attempts_out_of_range.yaml": {
		`../../test/templates/bad/max_attempts_out_of_range.yaml:8:21: steps[0].retry.max_attempts: max_attempts is 0; allowed range is 1 to 100 (attempts include the first run)`,
	},
	"max_backoff_below_base.yaml": {
		`../../test/templates/bad/max_backoff_below_base.yaml:9:23: steps[0].retry.max_backoff_ms: max_backoff_ms (2000) must be >= backoff_base_ms (5000)`,
	},
	"max_backoff_out_of_range.yaml": {
		`../../test/templates/bad/max_backoff_out_of_range.yaml:8:23: steps[0].retry.max_backoff_ms: max_backoff_ms is 7200000; allowed range is 1000 to 3600000`,
	},
	"merge_key.yaml": {
		`../../test/templates/bad/merge_key.yaml:7:5: steps[1].<<: YAML merge keys (<<) are not supported; repeat the keys or alias the whole value`,
	},
	"missing_callable.yaml": {
		`../../test/templates/bad/missing_callable.yaml:7:7: steps[0].handler.callable: missing required key "callable": the name the step's handler is registered under`,
	},
	"missing_event_description.yaml": {
		`../../test/templates/bad/missing_event_description.yaml:8:9: steps[0].publishes_events[0].description: missing required key "description": say what the event means to its consumers`,
	},
	"missing_event_name.yaml": {
		`../../test/templates/bad/missing_event_name.yaml:8:9: steps[0].publishes_events[0].name: missing required key "name": a dotted event name such as "payment.processed"`,
	},
	"missing_handler.yaml": {
		`../../test/templates/bad/missing_handler.yaml:5:5: steps[0].handler: missing required key "handler": a mapping whose "callable" names the code that runs this step`,
	},
	"missing_name.yaml": {
		`../../test/templates/bad/missing_name.yaml:1:1: name: missing required key "name": the task template's name (1-255 characters)`,
	},
	"missing_namespace.yaml": {
		`../../test/templates/bad/missing_namespace.yaml:1:1: namespace_name: missing required key "namespace_name": lower-case namespace matching ^[a-z][a-z0-9_]*$, at most 29 characters`,
	},
	"missing_step_name.yaml": {
		`../../test/templates/bad/missing_step_name.yaml:5:5: steps[0].name: missing required key "name": the step's name, unique within the template`,
	},
	"missing_steps.yaml": {
		`../../test/templates/bad/missing_steps.yaml:1:1: steps: missing required key "steps": a non-empty list of steps`,
	},
	"missing_version.yaml": {
		`../../test/templates/bad/missing_version.yaml:1:1: version: missing required key "version": semantic version MAJOR.MINOR.PATCH, e.g. "1.0.0"`,
	},
	"multiple_documents.yaml": {
		`../../test/templates/bad/multiple_documents.yaml:8:1: (document): the file holds more than one YAML document; a template must be a single document`,
	},
	"namespace_bad_characters.yaml": {
		`../../test/templates/bad/namespace_bad_characters.yaml:2:17: namespace_name: namespace "orders-eu" must match ^[a-z][a-z0-9_]*$: a lower-case letter, then lower-case letters, digits and _`,
	},
	"namespace_too_long.yaml": {
		`../../test/templates/bad/namespace_too_long.yaml:2:17: namespace_name: namespace "orders_fulfilment_and_shipping" is 30 characters long; at most 29 are allowed so that "orders_fulfilment_and_shipping_domain_events_dlq" fits pgmq's 47-character queue names`,
	},
	"negative_timeout.yaml": {
		`../../test/templates/bad/negative_timeout.yaml:7:22: steps[0].timeout_seconds: timeout_seconds is -5; allowed range is 0 to 2147483647 (0 means no timeout)`,
	},
	"redact_bad_escape.yaml": {
		`../../test/templates/bad/redact_bad_escape.yaml:10:26: steps[0].publishes_events[0].durable_redact[0]: durable_redact entry "/card~2number" has an invalid escape: "~" must be followed by 0 or 1 (RFC 6901: ~0 is "~", ~1 is "/")`,
	},
	"redact_root.yaml": {
		`../../test/templates/bad/redact_root.yaml:10:26: steps[0].publishes_events[0].durable_redact[0]: durable_redact entry "/" names the key "" (empty string), not the whole payload; to keep an event off the durable queue use delivery_mode: fast`,
	},
	"retry_limit_legacy.yaml": {
		`../../test/templates/bad/retry_limit_legacy.yaml:8:7: steps[0].retry.limit: unknown key "limit": the legacy retry.limit is not supported (the original silently ignored it); use max_attempts, which counts every attempt including the first`,
	},
	"root_not_mapping.yaml": {
		`../../test/templates/bad/root_not_mapping.yaml:1:1: (document): expected a mapping (the task template), got a list`,
	},
	"self_dependency.yaml": {
		`../../test/templates/bad/self_dependency.yaml:7:18: steps[0].depends_on[0]: step "validate" depends on itself`,
	},
	"single_segment_event_name.yaml": {
		`../../test/templates/bad/single_segment_event_name.yaml:8:15: steps[0].publishes_events[0].name: event name "validated" needs at least two dot-separated segments (domain.action), e.g. "order.validated"`,
	},
	"unknown_backoff.yaml": {
		`../../test/templates/bad/unknown_backoff.yaml:8:16: steps[0].retry.backoff: unknown backoff "fibonacci"; allowed: none, linear, exponential (default)`,
	},
	"unknown_condition.yaml": {
		`../../test/templates/bad/unknown_condition.yaml:10:20: steps[0].publishes_events[0].condition: unknown condition "on_success"; allowed: success (default), failure, retryable_failure, permanent_failure, always`,
	},
	"unknown_delivery_mode.yaml": {
		`../../test/templates/bad/unknown_delivery_mode.yaml:10:24: steps[0].publishes_events[0].delivery_mode: unknown delivery_mode "realtime"; allowed: durable (default), fast, broadcast`,
	},
	"unknown_dependency.yaml": {
		`../../test/templates/bad/unknown_dependency.yaml:9:20: steps[1].dependencies[0]: unknown dependency "validate_ordr"; did you mean "validate_order"?`,
	},
	"unknown_event_key.yaml": {
		`../../test/templates/bad/unknown_event_key.yaml:10:9: steps[0].publishes_events[0].delivery: unknown key "delivery"; allowed keys: name, description, condition, delivery_mode, publisher, schema, durable_redact`,
	},
	"unknown_key_typo.yaml": {
		`../../test/templates/bad/unknown_key_typo.yaml:7:5: steps[0].retyr: unknown key "retyr"; did you mean "retry"?`,
	},
	"unknown_top_level_key.yaml": {
		`../../test/templates/bad/unknown_top_level_key.yaml:4:1: owner: unknown key "owner"; allowed keys: name, namespace_name, version, description, input_schema, steps, environments`,
	},
	"uppercase_event_name.yaml": {
		`../../test/templates/bad/uppercase_event_name.yaml:8:15: steps[0].publishes_events[0].name: event name "Order.Validated" contains 'O'; segments may only use lower-case letters, digits and _, separated by dots`,
	},
	"uppercase_namespace.yaml": {
		`../../test/templates/bad/uppercase_namespace.yaml:2:17: namespace_name: namespace "Orders" must be lower case (pgmq folds queue names to lower case, so "Orders" and "orders" would collide); use "orders"`,
	},
	"version_not_string.yaml": {
		`../../test/templates/bad/version_not_string.yaml:3:10: version: expected a string, got float 1.0 (quote it if you meant a string)`,
	},
	"wildcard_event_name.yaml": {
		`../../test/templates/bad/wildcard_event_name.yaml:8:15: steps[0].publishes_events[0].name: event name "order.*" contains a wildcard; * and > are only allowed in subscription patterns, not in published names`,
	},
	"wrong_type_dependencies.yaml": {
		`../../test/templates/bad/wrong_type_dependencies.yaml:9:19: steps[1].dependencies: expected a list of step names, got string "validate"`,
	},
	"wrong_type_retryable.yaml": {
		`../../test/templates/bad/wrong_type_retryable.yaml:8:18: steps[0].retry.retryable: expected a boolean (true or false), got string "yes"`,
	},
	"wrong_type_step.yaml": {
		`../../test/templates/bad/wrong_type_step.yaml:5:5: steps[0]: expected a mapping (a step), got string "validate"`,
	},
	"wrong_type_steps.yaml": {
		`../../test/templates/bad/wrong_type_steps.yaml:5:3: steps: expected a list of steps, got a mapping`,
	},
	"yaml_syntax.yaml": {
		`../../test/templates/bad/yaml_syntax.yaml:6:14: (document): YAML syntax error: did not find expected ',' or '}'`,
	},
}

func TestBadTemplates(t *testing.T) {
	for name, want := range badFixtures {
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			tpl, err := template.LoadFile(badDir + name)
			require.Error(t, err)
			assert.Nil(t, tpl)
			var terr *template.Error
			require.True(t, errors.As(err, &terr), "error is %T, want *template.Error", err)
			got := make([]string, len(terr.Problems))
			for i, p := range terr.Problems {
				got[i] = p.String()
			}
			assert.Equal(t, want, got)
			assert.Equal(t, strings.Join(want, "\n"), err.Error())
		})
	}
}

// TestBadFixturesAllCovered fails when a fixture is added without an
// expectation (or an expectation outlives its fixture).
func TestBadFixturesAllCovered(t *testing.T) {
	entries, err := os.ReadDir(badDir)
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	var table []string
	for name := range badFixtures {
		table = append(table, name)
	}
	slices.Sort(table)
	assert.Equal(t, files, table)
	assert.GreaterOrEqual(t, len(files), 26)
}

func TestManyFaultsReportsEveryFault(t *testing.T) {
	_, err := template.LoadFile(filepath.Join(badDir, "many_faults.yaml"))
	var terr *template.Error
	require.True(t, errors.As(err, &terr))
	assert.GreaterOrEqual(t, len(terr.Problems), 5)
}
