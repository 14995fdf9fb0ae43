-- name: ApplyTemplate :one
SELECT stepevents.apply_template(
    @namespace::text, @name::text, @version::text, @description::text,
    sqlc.narg(input_schema)::jsonb, @definition::jsonb, @steps::jsonb, @events::jsonb)::bigint AS template_id;

-- name: ListTemplates :many
-- ListTemplates lists the applied templates by namespace, name and version,
-- versions in numeric order (9.0.0 before 10.0.0; numeric[], not integer[],
-- so no component is too large to compare).
SELECT t.template_id, t.namespace, t.name, t.version, t.description, t.created_at,
       (SELECT count(*) FROM stepevents.template_steps s WHERE s.template_id = t.template_id)::integer AS step_count,
       (SELECT count(*) FROM stepevents.event_declarations d WHERE d.template_id = t.template_id)::integer AS event_count
FROM stepevents.task_templates t
ORDER BY t.namespace, t.name, string_to_array(t.version, '.')::numeric[];

-- name: GetTemplateInputSchema :one
SELECT t.template_id, t.version, t.input_schema
FROM stepevents.task_templates t
WHERE t.namespace = @namespace::text AND t.name = @name::text
  AND (sqlc.narg(version)::text IS NULL OR t.version = sqlc.narg(version)::text)
ORDER BY string_to_array(t.version, '.')::numeric[] DESC, t.template_id DESC
LIMIT 1;

-- name: ListTemplateDeclarations :many
SELECT * FROM stepevents.event_declarations
WHERE template_id = @template_id::bigint
ORDER BY step_name, position;

-- name: ListDeclaredPublishers :many
SELECT DISTINCT publisher::text AS publisher FROM stepevents.event_declarations
WHERE publisher IS NOT NULL ORDER BY 1;

-- name: LockTemplate :exec
-- The lock stepevents.apply_template takes (same key), for callers that
-- apply several templates in one transaction and take them all first.
SELECT pg_advisory_xact_lock(hashtext('stepevents.template:' || @namespace::text || '/' || @name::text || '@' || @version::text));
