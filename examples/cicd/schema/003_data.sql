-- A realistic, deterministic data set: big enough that the planner makes the
-- choices it makes in production (an index only pays off on a big table with
-- a selective filter), small enough that the template builds in seconds.
--
--   workflows              100,000  180 days; 82% completed, 3% pending/running
--   agent_sessions          20,000  3% active
--   agent_interactions      50,000
--   pr_tracking             30,000  6% open
--   system_metrics         300,000  7 days of samples, in arrival (time) order
--   audit_logs_enhanced    100,000  100 days, in time order; 7% high security
--
-- Timestamps are relative to now() at load time, so "the last hour" always
-- holds data. setseed makes random() repeat: the same rows on every run, so
-- buffer counts (max_buffers budgets) do not drift.

-- Commit synchronously while loading: with the test profile's synchronous_commit = off,
-- VACUUM right after the load finds the commits not yet flushed, cannot set
-- hint bits and leaves the visibility map empty (index-only scans then visit
-- the heap). fsync is off, so this costs nothing.
SET synchronous_commit = on;

SELECT setseed(0.42);

-- Workflows -------------------------------------------------------------------
INSERT INTO workflows (name, description, workflow_type, environment, status, priority,
                       tags, metadata, configuration, created_by,
                       started_at, completed_at, created_at, updated_at)
SELECT initcap(replace(w.workflow_type, '_', ' ')) || ' ' || w.repo || ' #' || w.g,
       initcap(w.words),
       w.workflow_type, w.environment, w.status, w.priority,
       -- Tags: "nightly" on a third of the rows, "urgent" on 3%, a few rarer ones.
       to_jsonb(array_remove(ARRAY[
           CASE WHEN w.r_t1 < 0.35 THEN 'nightly' END,
           CASE WHEN w.r_t2 < (CASE WHEN w.environment = 'production' THEN 0.06 ELSE 0.02 END)
                THEN 'urgent' END,
           CASE WHEN w.r_t3 < 0.10 THEN 'experimental' END,
           CASE WHEN w.r_t4 < 0.08 THEN 'security' END,
           CASE WHEN w.r_t5 < 0.05 THEN 'flaky' END,
           CASE WHEN w.r_t6 < 0.02 THEN 'hotfix' END,
           CASE WHEN w.r_t7 < 0.01 THEN 'release-blocker' END
       ], NULL)),
       jsonb_build_object(
           'repository', w.repo,
           'branch', CASE WHEN w.r_branch < 0.60 THEN 'main'
                          WHEN w.r_branch < 0.75 THEN 'release/' || (1 + w.g % 12)
                          ELSE 'feature/f' || (w.g % 500) END,
           'triggered_by', CASE WHEN w.r_trigger < 0.55 THEN 'push'
                                WHEN w.r_trigger < 0.80 THEN 'schedule'
                                WHEN w.r_trigger < 0.95 THEN 'pull_request'
                                ELSE 'manual' END,
           'runner', 'runner-' || (10 + floor(32 * w.r_runner ^ 2)::int)),
       -- auto_deploy is set on a third of the deployments and releases (about 5% of rows).
       jsonb_build_object(
           'environment', jsonb_build_object(
               'region', CASE WHEN w.r_region < 0.5 THEN 'eu-west-1'
                              WHEN w.r_region < 0.8 THEN 'us-east-1'
                              ELSE 'ap-south-1' END,
               'approval_required', w.environment = 'production' AND w.r_region < 0.9),
           'timeout_minutes', 10 * (1 + w.g % 6),
           'retries', w.g % 4)
       || CASE WHEN w.workflow_type IN ('deployment', 'release') AND w.r_auto < 0.3
               THEN jsonb_build_object('auto_deploy', w.r_auto < 0.2)
               ELSE '{}' END,
       CASE WHEN w.r_trigger < 0.80 THEN 'ci-bot' ELSE 'dev-' || (100 + w.g % 150) END,
       CASE WHEN w.status <> 'pending' THEN w.created_at + interval '20 seconds' END,
       CASE WHEN w.status IN ('completed', 'failed', 'cancelled') THEN w.created_at + w.duration END,
       w.created_at,
       w.created_at + CASE WHEN w.status IN ('pending', 'running') THEN interval '20 seconds'
                           ELSE w.duration END
FROM (
    SELECT s.*,
           CASE WHEN s.r_type < 0.45 THEN 'ci_cd'
                WHEN s.r_type < 0.65 THEN 'testing'
                WHEN s.r_type < 0.77 THEN 'deployment'
                WHEN s.r_type < 0.86 THEN 'code_review'
                WHEN s.r_type < 0.93 THEN 'security_scan'
                WHEN s.r_type < 0.98 THEN 'release'
                ELSE 'data_migration' END AS workflow_type,
           CASE WHEN s.r_env < 0.20 THEN 'development'
                WHEN s.r_env < 0.50 THEN 'test'
                WHEN s.r_env < 0.75 THEN 'staging'
                ELSE 'production' END AS environment,
           -- Skewed like a real system: almost everything has finished.
           CASE WHEN s.r_status < 0.82 THEN 'completed'
                WHEN s.r_status < 0.91 THEN 'failed'
                WHEN s.r_status < 0.97 THEN 'cancelled'
                WHEN s.r_status < 0.99 THEN 'running'
                ELSE 'pending' END AS status,
           -- Active workflows started recently; finished ones spread over 180 days.
           CASE WHEN s.r_status >= 0.97 THEN now() - interval '6 hours' * s.r_age
                ELSE now() - interval '180 days' * s.r_age ^ 1.5 END AS created_at
    FROM (
        SELECT g,
               random() AS r_type, random() AS r_env, random() AS r_status, random() AS r_age,
               -- 0..10, most around 5
               round(10 * (random() + random() + random()) / 3)::int AS priority,
               random() AS r_t1, random() AS r_t2, random() AS r_t3, random() AS r_t4,
               random() AS r_t5, random() AS r_t6, random() AS r_t7,
               random() AS r_branch, random() AS r_trigger, random() AS r_runner,
               random() AS r_region, random() AS r_auto,
               (ARRAY['api-gateway', 'web-frontend', 'billing-service', 'auth-service',
                      'search-indexer', 'notification-hub', 'data-pipeline', 'mobile-app',
                      'ml-inference', 'infra-terraform', 'docs-site', 'payments',
                      'inventory', 'analytics', 'user-profile', 'scheduler',
                      'edge-proxy', 'recommendations', 'reporting', 'admin-console'])
                   [1 + floor(20 * random() ^ 2)::int] AS repo,
               -- Two to four words; the last ones of the list ("flaky", "regression") are rare.
               (ARRAY['build', 'unit', 'tests', 'lint', 'docker', 'image', 'deploy',
                      'integration', 'pipeline', 'artifact', 'cache', 'dependency',
                      'update', 'release', 'stage', 'checks', 'coverage', 'bundle',
                      'canary', 'rollback', 'kubernetes', 'terraform', 'migration',
                      'vulnerability', 'flaky', 'regression'])[1 + floor(26 * random() ^ 2.5)::int]
               || ' ' ||
               (ARRAY['build', 'unit', 'tests', 'lint', 'docker', 'image', 'deploy',
                      'integration', 'pipeline', 'artifact', 'cache', 'dependency',
                      'update', 'release', 'stage', 'checks', 'coverage', 'bundle',
                      'canary', 'rollback', 'kubernetes', 'terraform', 'migration',
                      'vulnerability', 'flaky', 'regression'])[1 + floor(26 * random() ^ 2.5)::int]
               || CASE WHEN g % 3 = 0 THEN '' ELSE ' ' ||
               (ARRAY['build', 'unit', 'tests', 'lint', 'docker', 'image', 'deploy',
                      'integration', 'pipeline', 'artifact', 'cache', 'dependency',
                      'update', 'release', 'stage', 'checks', 'coverage', 'bundle',
                      'canary', 'rollback', 'kubernetes', 'terraform', 'migration',
                      'vulnerability', 'flaky', 'regression'])[1 + floor(26 * random() ^ 2.5)::int]
                  END AS words,
               interval '1 second' * (60 + floor(3000 * random() ^ 3)) AS duration
        FROM generate_series(1, 100000) AS g
    ) AS s
) AS w
ORDER BY w.created_at;

-- Agent sessions --------------------------------------------------------------
INSERT INTO agent_sessions (agent_name, agent_type, status, workflow_id, context_data,
                            total_requests, failed_requests, total_tokens, avg_response_time_ms,
                            started_at, last_activity_at, ended_at, created_at, updated_at)
SELECT s.agent_type || '-' || (10 + s.g % 40),
       s.agent_type, s.status,
       1 + floor(100000 * random())::bigint,
       jsonb_build_object(
           'type', CASE WHEN s.r_ctx < 0.40 THEN 'code_review'
                        WHEN s.r_ctx < 0.65 THEN 'test_generation'
                        WHEN s.r_ctx < 0.85 THEN 'deployment'
                        WHEN s.r_ctx < 0.97 THEN 'chat'
                        ELSE 'incident' END,
           'model', CASE WHEN s.g % 3 = 0 THEN 'large' ELSE 'small' END,
           'max_tokens', 1024 * (1 + s.g % 4)),
       s.requests, floor(s.requests * 0.05 * random())::int, s.requests * (200 + s.g % 700),
       round((150 + 1800 * random() ^ 2)::numeric, 2),
       s.last_activity - interval '1 minute' * (5 + s.g % 240),
       s.last_activity,
       CASE WHEN s.status IN ('terminated', 'error') THEN s.last_activity END,
       s.last_activity - interval '1 minute' * (5 + s.g % 240),
       s.last_activity
FROM (
    SELECT g, r_ctx, requests,
           (ARRAY['ai_assistant', 'code_reviewer', 'test_generator', 'deploy_agent',
                  'security_auditor'])[1 + floor(5 * r_kind ^ 1.5)::int] AS agent_type,
           CASE WHEN r_status < 0.03 THEN 'active'
                WHEN r_status < 0.15 THEN 'idle'
                WHEN r_status < 0.95 THEN 'terminated'
                ELSE 'error' END AS status,
           CASE WHEN r_status < 0.03 THEN now() - interval '90 minutes' * r_age
                WHEN r_status < 0.15 THEN now() - interval '1 day' * r_age
                ELSE now() - interval '60 days' * r_age END AS last_activity
    FROM (
        SELECT g, random() AS r_ctx, random() AS r_kind, random() AS r_status, random() AS r_age,
               floor(1 + 400 * random() ^ 3)::int AS requests
        FROM generate_series(1, 20000) AS g
    ) AS raw
) AS s
ORDER BY s.last_activity;

-- Agent interactions ----------------------------------------------------------
INSERT INTO agent_interactions (session_id, interaction_type, request_data, response_data,
                                duration_ms, tokens_used, success, error_message, created_at)
SELECT i.session_id,
       i.interaction_type,
       jsonb_build_object('message', 'request ' || i.g, 'files', i.g % 7),
       CASE WHEN i.success THEN jsonb_build_object('response', 'ok', 'suggestions', i.g % 5)
            ELSE '{}' END,
       floor(80 + 2500 * i.r_dur ^ 3)::int,
       floor(50 + 4000 * i.r_tok ^ 2)::int,
       i.success,
       CASE WHEN NOT i.success THEN 'upstream timeout' END,
       i.created_at
FROM (
    SELECT g, 1 + floor(20000 * random())::bigint AS session_id,
           (ARRAY['chat', 'code_generation', 'review', 'tool_call', 'summary'])
               [1 + floor(5 * random() ^ 1.3)::int] AS interaction_type,
           random() AS r_dur, random() AS r_tok, random() >= 0.04 AS success,
           now() - interval '60 days' * random() AS created_at
    FROM generate_series(1, 50000) AS g
) AS i
ORDER BY i.created_at;

-- Pull requests ---------------------------------------------------------------
INSERT INTO pr_tracking (repository_name, pr_number, title, description, author, status,
                         workflow_id, quality_score, test_coverage_percentage,
                         lines_added, lines_removed, created_at, updated_at, merged_at)
SELECT p.repo,
       row_number() OVER (PARTITION BY p.repo ORDER BY p.created_at),
       initcap(p.verb) || ' ' || p.topic || ' in ' || p.repo,
       -- Most PRs have no description (hence the guide's COALESCE in its text index).
       CASE WHEN p.r_extra < 0.03 THEN 'Also fixes a flaky integration test'
            WHEN p.r_extra < 0.06 THEN 'Behind a feature flag for the canary rollout'
            WHEN p.r_extra < 0.30 THEN 'Closes the ' || p.topic || ' ticket'
       END,
       'dev-' || (100 + floor(150 * random())::int),
       p.status,
       1 + floor(100000 * random())::bigint,
       round((40 + 60 * random() ^ 0.7)::numeric, 2),
       round((30 + 70 * random() ^ 0.5)::numeric, 2),
       floor(5 + 800 * random() ^ 3)::int,
       floor(800 * random() ^ 4)::int,
       p.created_at,
       p.created_at + interval '3 hours' * p.r_age,
       CASE WHEN p.status = 'merged' THEN p.created_at + interval '2 days' * p.r_age END
FROM (
    SELECT g, r_extra, r_age,
           (ARRAY['api-gateway', 'web-frontend', 'billing-service', 'auth-service',
                  'search-indexer', 'notification-hub', 'data-pipeline', 'mobile-app',
                  'ml-inference', 'infra-terraform', 'docs-site', 'payments',
                  'inventory', 'analytics', 'user-profile', 'scheduler',
                  'edge-proxy', 'recommendations', 'reporting', 'admin-console'])
               [1 + floor(20 * r_repo ^ 2)::int] AS repo,
           (ARRAY['refactor', 'fix', 'add', 'remove', 'upgrade', 'document', 'optimize', 'test'])
               [1 + floor(8 * random())::int] AS verb,
           (ARRAY['retry logic', 'connection pool', 'build cache', 'login flow', 'api client',
                  'database schema', 'error handling', 'metrics export', 'docker image',
                  'helm chart', 'rate limiter', 'search ranking', 'invoice export',
                  'kubernetes manifests', 'terraform modules', 'webhook handler'])
               [1 + floor(16 * random() ^ 1.5)::int] AS topic,
           CASE WHEN r_status < 0.80 THEN 'merged'
                WHEN r_status < 0.92 THEN 'closed'
                WHEN r_status < 0.98 THEN 'open'
                ELSE 'draft' END AS status,
           CASE WHEN r_status >= 0.92 THEN now() - interval '14 days' * r_age
                ELSE now() - interval '365 days' * r_age END AS created_at
    FROM (
        SELECT g, random() AS r_repo, random() AS r_status, random() AS r_age, random() AS r_extra
        FROM generate_series(1, 30000) AS g
    ) AS raw
) AS p
ORDER BY p.created_at;

-- System metrics: 7 days of samples from 12 metrics, in arrival (time) order --
INSERT INTO system_metrics (metric_category, metric_name, metric_type, numeric_value,
                            dimensions, source_system, "timestamp")
SELECT (ARRAY['performance', 'performance', 'performance', 'resources', 'resources',
              'resources', 'pipeline', 'pipeline', 'pipeline', 'agents', 'agents',
              'database'])[1 + g % 12],
       (ARRAY['query_latency_ms', 'request_rate', 'error_rate', 'cpu_percent',
              'memory_mb', 'disk_io_mbps', 'build_duration_s', 'queue_depth',
              'test_pass_rate', 'tokens_per_minute', 'agent_response_ms',
              'connections_active'])[1 + g % 12],
       (ARRAY['timer', 'counter', 'gauge', 'gauge', 'gauge', 'gauge', 'timer', 'gauge',
              'gauge', 'counter', 'timer', 'gauge'])[1 + g % 12],
       -- a base value per metric, a daily wave, and noise
       (ARRAY[35, 1200, 0.8, 55, 2048, 120, 340, 12, 97, 4500, 900, 40]::float8[])[1 + g % 12]
           * (1 + 0.3 * sin(14 * pi() * g / 300000.0))  -- 7 days: 7 waves
           * (0.7 + 0.6 * random()),
       -- a text-built jsonb is cheaper to make than jsonb_build_object, a million times over
       ('{"host": "runner-' || (10 + floor(32 * random() ^ 1.5)::int)
           || '", "region": "' || (ARRAY['eu-west-1', 'eu-west-1', 'eu-west-1', 'eu-west-1',
                                          'eu-west-1', 'us-east-1', 'us-east-1', 'us-east-1',
                                          'ap-south-1', 'ap-south-1'])[1 + g % 10]
           || '", "service": "' || (ARRAY['api', 'worker', 'scheduler', 'web', 'db',
                                           'agent-runtime'])[1 + (g / 12) % 6]
           || '"}')::jsonb,
       (ARRAY['app', 'app', 'app', 'node-exporter', 'node-exporter', 'node-exporter',
              'ci', 'ci', 'ci', 'agent-gateway', 'agent-gateway', 'postgres'])[1 + g % 12],
       now() - interval '7 days' * (1 - g::float8 / 300000)
FROM generate_series(1, 300000) AS g;

-- Audit log: 100 days, in time order ------------------------------------------
INSERT INTO audit_logs_enhanced (entity_type, entity_id, action, actor, old_values, new_values,
                                 security_level, ip_address, details, "timestamp")
SELECT a.entity_type,
       1 + floor(100000 * random())::bigint,
       a.action,
       CASE WHEN a.g % 4 = 0 THEN 'ci-bot' ELSE 'dev-' || (100 + a.g % 150) END,
       CASE WHEN a.action = 'update' THEN '{"status": "running"}'::jsonb END,
       CASE WHEN a.action = 'update' THEN '{"status": "completed"}'::jsonb END,
       CASE WHEN a.r_level < 0.70 THEN 'low'
            WHEN a.r_level < 0.92 THEN 'medium'
            WHEN a.r_level < 0.99 THEN 'high'
            ELSE 'critical' END,
       ('10.' || (a.g % 256) || '.' || ((a.g / 256) % 256) || '.' || (1 + a.g % 250))::inet,
       jsonb_build_object('request_id', md5('req' || a.g)),
       now() - interval '100 days' * (1 - a.g::float8 / 100000)
FROM (
    SELECT g, random() AS r_level,
           (ARRAY['workflow', 'workflow', 'agent_session', 'pr', 'secret', 'user'])
               [1 + floor(6 * random())::int] AS entity_type,
           (ARRAY['create', 'update', 'update', 'delete', 'login', 'permission_change'])
               [1 + floor(6 * random())::int] AS action
    FROM generate_series(1, 100000) AS g
) AS a;

-- What the guide's weekly maintenance would have done by now: VACUUM sets the
-- visibility map (index-only scans need it) and hint bits, so the first test
-- that reads a page does not pay for writing it. The plugin runs ANALYZE after
-- the last file.
VACUUM;
