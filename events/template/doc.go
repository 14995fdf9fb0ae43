// Package template parses and validates stepevents task templates: the YAML
// files that declare a workflow's steps, their retry policy and the domain
// events each step publishes.
//
// The format is compatible with the original tasker-core task templates, but
// validation is strict where the original was silent (see
// original-system.md §11): every problem in a file is reported at once, each
// with file:line:column and a field path, so a broken template fails loudly
// at load time instead of misbehaving at run time.
//
// # Keys
//
// Keys stepevents uses are validated. Keys of the original format that
// stepevents does not use (lifecycle, system_dependencies, metadata,
// domain_events, type/step_type, system_dependency, batch_config,
// result_schema, handler.method/resolver/initialization) are accepted and
// reported in Template.Warnings. Any other key is an error, which catches
// typos and the legacy retry.limit.
//
// # Environment overrides
//
// environments.<env>.steps[] entries name a step and may set timeout_seconds
// and retry. With WithEnvironment(env) the overrides of that environment are
// applied:
//
//   - timeout_seconds replaces the step's value;
//   - retry MERGES key by key over the step's resolved retry policy: keys the
//     override sets win, every other key keeps the base step's value (its
//     explicit value, or the default). The original replaced the whole retry
//     block, so `retry: {max_attempts: 1}` silently reset backoff settings to
//     defaults; here it changes max_attempts only;
//   - handler is accepted for compatibility and ignored (with a warning).
//
// Every environment is validated whether or not it is selected: an override
// of a step the template does not define, a repeated override of one step,
// bad retry values, or a merged policy whose max_backoff_ms is below its
// backoff_base_ms are errors. Selecting an environment the template does not
// mention applies nothing and is not an error, so one binary can run in any
// environment.
//
// # JSON Schemas
//
// input_schema and publishes_events[].schema are converted from YAML to JSON
// and compiled at load time (JSON Schema draft 2020-12 unless the schema's
// $schema names another draft; a schema without $schema that is only valid as
// draft-07 is accepted as draft-07 with a warning). Formats such as uuid and
// date-time are asserted. External $ref targets are never fetched: templates
// must be self-contained. Compiled schemas are kept on the Template so that
// payload validation at publish time costs no compilation.
package template
