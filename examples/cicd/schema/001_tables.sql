-- The tables of "PostgreSQL Performance Tuning Guide for AI-Driven CI/CD".
--
-- The guide shows indexes and queries, not the DDL; the columns below are the
-- ones those indexes and queries use, plus what an application of this kind
-- needs around them (timestamps, foreign keys, CHECK constraints).

CREATE TABLE workflows (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL,
    description   text,
    workflow_type text        NOT NULL
        CHECK (workflow_type IN ('ci_cd', 'deployment', 'testing', 'security_scan',
                                 'code_review', 'release', 'data_migration')),
    environment   text        NOT NULL
        CHECK (environment IN ('development', 'test', 'staging', 'production')),
    status        text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    priority      integer     NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 10),
    tags          jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tags) = 'array'),
    metadata      jsonb       NOT NULL DEFAULT '{}',
    configuration jsonb       NOT NULL DEFAULT '{}',
    created_by    text        NOT NULL DEFAULT 'system',
    started_at    timestamptz,
    completed_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agent_sessions (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_name           text        NOT NULL,
    agent_type           text        NOT NULL
        CHECK (agent_type IN ('ai_assistant', 'code_reviewer', 'test_generator',
                              'deploy_agent', 'security_auditor')),
    status               text        NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'idle', 'terminated', 'error')),
    workflow_id          bigint REFERENCES workflows (id) ON DELETE SET NULL,
    context_data         jsonb       NOT NULL DEFAULT '{}',
    total_requests       integer     NOT NULL DEFAULT 0,
    failed_requests      integer     NOT NULL DEFAULT 0,
    total_tokens         bigint      NOT NULL DEFAULT 0,
    avg_response_time_ms numeric(10, 2) NOT NULL DEFAULT 0,
    started_at           timestamptz NOT NULL DEFAULT now(),
    last_activity_at     timestamptz NOT NULL DEFAULT now(),
    ended_at             timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- One row per request an agent served (the guide's load test records these:
-- recordAgentInteraction(session.id, {interaction_type, request_data, ...})).
CREATE TABLE agent_interactions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id       bigint      NOT NULL REFERENCES agent_sessions (id) ON DELETE CASCADE,
    interaction_type text        NOT NULL
        CHECK (interaction_type IN ('chat', 'code_generation', 'review', 'tool_call', 'summary')),
    request_data     jsonb       NOT NULL DEFAULT '{}',
    response_data    jsonb       NOT NULL DEFAULT '{}',
    duration_ms      integer     NOT NULL CHECK (duration_ms >= 0),
    tokens_used      integer     NOT NULL DEFAULT 0 CHECK (tokens_used >= 0),
    success          boolean     NOT NULL DEFAULT true,
    error_message    text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pr_tracking (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_name          text        NOT NULL,
    pr_number                integer     NOT NULL,
    title                    text        NOT NULL,
    description              text,
    author                   text        NOT NULL,
    status                   text        NOT NULL DEFAULT 'open'
        CHECK (status IN ('draft', 'open', 'merged', 'closed')),
    workflow_id              bigint REFERENCES workflows (id) ON DELETE SET NULL,
    quality_score            numeric(5, 2) CHECK (quality_score BETWEEN 0 AND 100),
    test_coverage_percentage numeric(5, 2) CHECK (test_coverage_percentage BETWEEN 0 AND 100),
    lines_added              integer     NOT NULL DEFAULT 0,
    lines_removed            integer     NOT NULL DEFAULT 0,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    merged_at                timestamptz,
    UNIQUE (repository_name, pr_number)
);

CREATE TABLE system_metrics (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    metric_category text             NOT NULL,
    metric_name     text             NOT NULL,
    metric_type     text             NOT NULL DEFAULT 'gauge'
        CHECK (metric_type IN ('gauge', 'counter', 'timer', 'histogram', 'aggregate')),
    numeric_value   double precision,
    string_value    text,
    dimensions      jsonb            NOT NULL DEFAULT '{}',
    source_system   text             NOT NULL DEFAULT 'unknown',
    "timestamp"     timestamptz      NOT NULL DEFAULT now()
);

CREATE TABLE audit_logs_enhanced (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity_type    text        NOT NULL,
    entity_id      bigint,
    action         text        NOT NULL,
    actor          text        NOT NULL DEFAULT 'system',
    old_values     jsonb,
    new_values     jsonb,
    security_level text        NOT NULL DEFAULT 'low'
        CHECK (security_level IN ('low', 'medium', 'high', 'critical')),
    ip_address     inet,
    details        jsonb       NOT NULL DEFAULT '{}',
    "timestamp"    timestamptz NOT NULL DEFAULT now()
);
