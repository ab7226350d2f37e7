-- Every index of the guide, as the guide writes it (CREATE INDEX CONCURRENTLY:
-- what you run on a live production table; the plugin runs these statements
-- outside a transaction, as PostgreSQL requires), then the ones its queries
-- need but the guide does not spell out.

-- More memory makes the GIN builds below several times faster. Session-level:
-- it only affects this load.
SET maintenance_work_mem = '1GB';

-- 1. Partial indexes for active records -----------------------------------------

-- Active workflows only
CREATE INDEX CONCURRENTLY idx_workflows_active_priority
ON workflows(priority DESC, created_at DESC)
WHERE status IN ('pending', 'running');

-- Active agent sessions only.
-- ADAPTED: the guide's predicate is
--     WHERE status = 'active' AND last_activity_at > NOW() - INTERVAL '1 hour'
-- which PostgreSQL rejects ("functions in index predicate must be marked
-- IMMUTABLE"): an index predicate is evaluated when a row is written, so it
-- cannot mean "the last hour" at query time. The time condition moves into
-- the query (see tests/test_agents.py); active sessions are few, so the index
-- stays small.
CREATE INDEX CONCURRENTLY idx_agent_sessions_active_performance
ON agent_sessions(avg_response_time_ms ASC, total_requests DESC)
WHERE status = 'active';

-- Open PRs only
CREATE INDEX CONCURRENTLY idx_pr_tracking_open_quality
ON pr_tracking(quality_score DESC, test_coverage_percentage DESC)
WHERE status = 'open';

-- 2. Composite indexes for common query patterns --------------------------------

-- Workflow queries by environment and status
CREATE INDEX CONCURRENTLY idx_workflows_env_status_priority
ON workflows(environment, status, priority DESC);

-- Agent session lookup by name and type
CREATE INDEX CONCURRENTLY idx_agent_sessions_name_type_activity
ON agent_sessions(agent_name, agent_type, last_activity_at DESC);

-- PR tracking by repository and status
CREATE INDEX CONCURRENTLY idx_pr_tracking_repo_status_updated
ON pr_tracking(repository_name, status, updated_at DESC);

-- 3. JSONB indexes for metadata queries -----------------------------------------

-- GIN indexes for JSONB columns
CREATE INDEX CONCURRENTLY idx_workflows_tags_gin
ON workflows USING GIN(tags);

CREATE INDEX CONCURRENTLY idx_workflows_metadata_gin
ON workflows USING GIN(metadata);

CREATE INDEX CONCURRENTLY idx_system_metrics_dimensions_gin
ON system_metrics USING GIN(dimensions);

-- Specific JSONB path indexes
CREATE INDEX CONCURRENTLY idx_workflows_config_environment
ON workflows USING GIN((configuration->'environment'));

CREATE INDEX CONCURRENTLY idx_agent_sessions_context_type
ON agent_sessions USING GIN((context_data->'type'));

-- 4. Text search indexes ------------------------------------------------------------

-- Full-text search capabilities
CREATE INDEX CONCURRENTLY idx_workflows_text_search
ON workflows USING GIN(to_tsvector('english', name || ' ' || COALESCE(description, '')));

CREATE INDEX CONCURRENTLY idx_pr_tracking_text_search
ON pr_tracking USING GIN(to_tsvector('english', title || ' ' || COALESCE(description, '')));

-- 5. Not in the guide: what its queries need ----------------------------------------

-- "Good: Use indexed timestamp columns" - the guide's time-range queries on
-- system_metrics (and calculate_aggregated_metrics) need this one.
CREATE INDEX CONCURRENTLY idx_system_metrics_timestamp
ON system_metrics("timestamp");

-- "Good: Use partial indexes for recent data" on audit_logs_enhanced with
-- security_level = 'high'. "Recent" cannot be in the predicate (see above), so
-- the partial index holds the high-security rows, ordered by time.
CREATE INDEX CONCURRENTLY idx_audit_logs_enhanced_high_security
ON audit_logs_enhanced("timestamp")
WHERE security_level = 'high';

-- Retention deletes by age (cleanup_old_audit_logs).
CREATE INDEX CONCURRENTLY idx_audit_logs_enhanced_timestamp
ON audit_logs_enhanced("timestamp");

-- "Good: Use existence operator" - configuration ? 'auto_deploy'. The guide's
-- only configuration index is on the expression configuration->'environment',
-- which cannot serve an operator on the whole column; this one can.
CREATE INDEX CONCURRENTLY idx_workflows_configuration_gin
ON workflows USING GIN(configuration);

-- "Good: Use covering indexes" for the 30-day aggregation by workflow_type:
-- created_at finds the rows, INCLUDE carries the grouped and filtered columns,
-- so the query is an index-only scan.
CREATE INDEX CONCURRENTLY idx_workflows_created_at_covering
ON workflows(created_at) INCLUDE (workflow_type, status);

-- An agent session's interactions, newest first (and the foreign key's index:
-- without it deleting a session scans agent_interactions).
CREATE INDEX CONCURRENTLY idx_agent_interactions_session_created
ON agent_interactions(session_id, created_at DESC);

RESET maintenance_work_mem;
