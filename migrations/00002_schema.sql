-- Schema stepevents: task templates and their event declarations, tasks,
-- workflow steps, dependency edges and the step transition history.
-- Plain tables so everything can be inspected with psql.

-- +goose Up
CREATE SCHEMA stepevents;

CREATE TABLE stepevents.task_templates (
    template_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace    text        NOT NULL CHECK (namespace ~ '^[a-z][a-z0-9_]{0,28}$'),
    name         text        NOT NULL CHECK (name <> '' AND length(name) <= 255),
    version      text        NOT NULL CHECK (version ~ '^[0-9]+\.[0-9]+\.[0-9]+$'),
    description  text        NOT NULL DEFAULT '',
    input_schema jsonb,
    definition   jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace, name, version)
);

-- The steps a template declares, copied into workflow_steps when a task is created.
CREATE TABLE stepevents.template_steps (
    template_id     bigint  NOT NULL REFERENCES stepevents.task_templates ON DELETE CASCADE,
    name            text    NOT NULL CHECK (name <> '' AND length(name) <= 255),
    position        integer NOT NULL,
    handler         text    NOT NULL,
    dependencies    text[]  NOT NULL DEFAULT '{}',
    retryable       boolean NOT NULL DEFAULT true,
    max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    backoff         text    NOT NULL DEFAULT 'exponential' CHECK (backoff IN ('none', 'linear', 'exponential')),
    backoff_base_ms integer NOT NULL DEFAULT 1000 CHECK (backoff_base_ms BETWEEN 100 AND 3600000),
    max_backoff_ms  integer NOT NULL DEFAULT 30000 CHECK (max_backoff_ms BETWEEN 1000 AND 3600000),
    timeout_seconds integer NOT NULL DEFAULT 0 CHECK (timeout_seconds >= 0),
    PRIMARY KEY (template_id, name)
);

-- Per-step domain event declarations (publishes_events in the YAML).
CREATE TABLE stepevents.event_declarations (
    template_id    bigint  NOT NULL,
    step_name      text    NOT NULL,
    position       integer NOT NULL,
    event_name     text    NOT NULL CHECK (event_name ~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$' AND length(event_name) <= 255),
    description    text    NOT NULL DEFAULT '',
    condition      text    NOT NULL DEFAULT 'success'
        CHECK (condition IN ('success', 'failure', 'retryable_failure', 'permanent_failure', 'always')),
    delivery_mode  text    NOT NULL DEFAULT 'durable' CHECK (delivery_mode IN ('durable', 'fast', 'broadcast')),
    publisher      text,
    schema         jsonb,
    durable_redact text[]  NOT NULL DEFAULT '{}',
    PRIMARY KEY (template_id, step_name, event_name),
    FOREIGN KEY (template_id, step_name) REFERENCES stepevents.template_steps ON DELETE CASCADE
);

CREATE TABLE stepevents.tasks (
    task_uuid        uuid        PRIMARY KEY,
    template_id      bigint      NOT NULL REFERENCES stepevents.task_templates,
    namespace        text        NOT NULL,
    template_name    text        NOT NULL,
    template_version text        NOT NULL,
    context          jsonb       NOT NULL DEFAULT '{}',
    correlation_id   uuid        NOT NULL,
    state            text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'in_progress', 'complete', 'error', 'cancelled')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);
CREATE INDEX tasks_state_idx ON stepevents.tasks (state) WHERE state IN ('pending', 'in_progress');
CREATE INDEX tasks_correlation_idx ON stepevents.tasks (correlation_id);

-- One row per step of a task. state mirrors the most_recent transition and is
-- only ever changed by stepevents.transition_step.
CREATE TABLE stepevents.workflow_steps (
    step_uuid               uuid        PRIMARY KEY,
    task_uuid               uuid        NOT NULL REFERENCES stepevents.tasks ON DELETE CASCADE,
    name                    text        NOT NULL,
    position                integer     NOT NULL,
    handler                 text        NOT NULL,
    retryable               boolean     NOT NULL,
    max_attempts            integer     NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    backoff                 text        NOT NULL CHECK (backoff IN ('none', 'linear', 'exponential')),
    backoff_base_ms         integer     NOT NULL,
    max_backoff_ms          integer     NOT NULL,
    timeout_seconds         integer     NOT NULL DEFAULT 0,
    attempts                integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_attempted_at       timestamptz,
    last_failure_at         timestamptz,
    backoff_request_seconds double precision,
    -- last_failure_at + backoff_request_seconds while waiting_for_retry;
    -- stored so the runner finds due steps through an index.
    next_retry_at           timestamptz,
    -- Set when a failure was declared permanent by the caller: no retry
    -- whatever attempts remain. Cleared by reset_step.
    retry_blocked           boolean     NOT NULL DEFAULT false,
    results                 jsonb,
    last_error              jsonb,
    state                   text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'in_progress', 'waiting_for_retry', 'complete', 'error', 'cancelled',
                         'resolved_manually')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_uuid, name)
);
-- The runner looks for claimable steps through this index.
CREATE INDEX workflow_steps_claimable_idx ON stepevents.workflow_steps (state, created_at)
    WHERE state IN ('pending', 'waiting_for_retry');

CREATE TABLE stepevents.workflow_step_edges (
    task_uuid      uuid NOT NULL REFERENCES stepevents.tasks ON DELETE CASCADE,
    from_step_uuid uuid NOT NULL REFERENCES stepevents.workflow_steps ON DELETE CASCADE,
    to_step_uuid   uuid NOT NULL REFERENCES stepevents.workflow_steps ON DELETE CASCADE,
    PRIMARY KEY (to_step_uuid, from_step_uuid),
    CHECK (from_step_uuid <> to_step_uuid)
);
CREATE INDEX workflow_step_edges_from_idx ON stepevents.workflow_step_edges (from_step_uuid);

CREATE TABLE stepevents.workflow_step_transitions (
    transition_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_uuid     uuid        NOT NULL REFERENCES stepevents.workflow_steps ON DELETE CASCADE,
    from_state    text,
    to_state      text        NOT NULL,
    most_recent   boolean     NOT NULL,
    sort_key      integer     NOT NULL,
    metadata      jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (step_uuid, sort_key)
);
-- Exactly one most_recent row per step.
CREATE UNIQUE INDEX workflow_step_transitions_most_recent_idx
    ON stepevents.workflow_step_transitions (step_uuid) WHERE most_recent;

-- +goose Down
DROP SCHEMA stepevents CASCADE;
