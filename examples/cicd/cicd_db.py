"""The application's data access layer: every query of the guide, as the app runs it.

"PostgreSQL Performance Tuning Guide for AI-Driven CI/CD" shows its queries
as SQL with literals. An application sends them with parameters; that is what
these functions do (psycopg 3, server-side parameters), and what the tests in
``tests/`` put performance budgets on. Each function names the section of the
guide its query comes from.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Row = dict[str, Any]


def _all(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def _one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> Row | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchone()


# -- Query optimization 1: efficient JSONB queries -----------------------------------


def workflows_tagged(conn: psycopg.Connection[Any], *tags: str) -> list[Row]:
    """'Good: Use GIN index with containment operator' (tags @> '["urgent"]')."""
    return _all(conn, "SELECT * FROM workflows WHERE tags @> %s", [Jsonb(list(tags))])


def workflows_with_config_key(conn: psycopg.Connection[Any], key: str) -> list[Row]:
    """'Good: Use existence operator' (configuration ? 'auto_deploy')."""
    return _all(conn, "SELECT * FROM workflows WHERE configuration ? %s", [key])


def workflows_with_many_tags(conn: psycopg.Connection[Any], more_than: int) -> list[Row]:
    """The guide's 'Avoid: Functional expressions that can't use indexes'."""
    return _all(conn, "SELECT * FROM workflows WHERE jsonb_array_length(tags) > %s", [more_than])


def workflows_by_metadata(conn: psycopg.Connection[Any], **fields: str) -> list[Row]:
    """Containment on metadata (idx_workflows_metadata_gin), e.g. repository and trigger."""
    return _all(
        conn, "SELECT id, name, status FROM workflows WHERE metadata @> %s", [Jsonb(fields)]
    )


def count_workflows_by_metadata(conn: psycopg.Connection[Any], **fields: str) -> int:
    """How many workflows match, e.g. branch 'main' (a dashboard counter)."""
    row = conn.execute(
        "SELECT count(*) FROM workflows WHERE metadata @> %s", [Jsonb(fields)]
    ).fetchone()
    assert row is not None
    return int(row[0])


def workflows_by_target(conn: psycopg.Connection[Any], **target: Any) -> list[Row]:
    """The JSONB path index idx_workflows_config_environment: configuration->'environment'."""
    return _all(
        conn,
        "SELECT id, name, environment FROM workflows WHERE configuration->'environment' @> %s",
        [Jsonb(target)],
    )


def agent_sessions_of_context(conn: psycopg.Connection[Any], context_type: str) -> list[Row]:
    """The JSONB path index idx_agent_sessions_context_type: context_data->'type'."""
    return _all(
        conn,
        "SELECT id, agent_name, status FROM agent_sessions WHERE context_data->'type' ? %s",
        [context_type],
    )


def metrics_summary_for(conn: psycopg.Connection[Any], **dimensions: str) -> list[Row]:
    """An incident view: every metric of one host/service (idx_system_metrics_dimensions_gin)."""
    return _all(
        conn,
        """
        SELECT metric_name, count(*) AS samples, avg(numeric_value) AS avg_value,
               max(numeric_value) AS max_value
        FROM system_metrics
        WHERE dimensions @> %s
        GROUP BY metric_name
        ORDER BY metric_name
        """,
        [Jsonb(dimensions)],
    )


# -- Query optimization 2: time ranges ------------------------------------------------


def recent_metrics(conn: psycopg.Connection[Any], within: timedelta) -> list[Row]:
    """'Good: Use indexed timestamp columns'."""
    return _all(
        conn,
        "SELECT * FROM system_metrics WHERE timestamp >= NOW() - %s ORDER BY timestamp DESC",
        [within],
    )


def high_security_events(conn: psycopg.Connection[Any], within: timedelta) -> list[Row]:
    """'Good: Use partial indexes for recent data'."""
    return _all(
        conn,
        """
        SELECT * FROM audit_logs_enhanced
        WHERE timestamp >= NOW() - %s
          AND security_level = 'high'
        """,
        [within],
    )


# -- Query optimization 3: aggregation ------------------------------------------------


def workflow_type_report(conn: psycopg.Connection[Any], within: timedelta) -> list[Row]:
    """'Good: Use covering indexes': counts with FILTER."""
    return _all(
        conn,
        """
        SELECT
            workflow_type,
            COUNT(*) as total,
            COUNT(*) FILTER (WHERE status = 'completed') as completed
        FROM workflows
        WHERE created_at >= NOW() - %s
        GROUP BY workflow_type
        """,
        [within],
    )


def hourly_metric_trend(conn: psycopg.Connection[Any], within: timedelta) -> list[Row]:
    """'Good: Use window functions for running totals'."""
    return _all(
        conn,
        """
        SELECT
            date_trunc('hour', timestamp) as hour,
            metric_name,
            AVG(numeric_value) as avg_value,
            LAG(AVG(numeric_value)) OVER (
                PARTITION BY metric_name
                ORDER BY date_trunc('hour', timestamp)
            ) as prev_avg
        FROM system_metrics
        WHERE timestamp >= NOW() - %s
        GROUP BY date_trunc('hour', timestamp), metric_name
        """,
        [within],
    )


# -- Index strategies 4: text search --------------------------------------------------


def search_workflows(conn: psycopg.Connection[Any], terms: str, limit: int = 20) -> list[Row]:
    """Full-text search over name and description (idx_workflows_text_search).

    The expression must be the index's, character for character, or the index
    cannot serve it.
    """
    return _all(
        conn,
        """
        SELECT id, name, description,
               ts_rank(to_tsvector('english', name || ' ' || COALESCE(description, '')), q) AS rank
        FROM workflows, websearch_to_tsquery('english', %s) AS q
        WHERE to_tsvector('english', name || ' ' || COALESCE(description, '')) @@ q
        ORDER BY rank DESC, id
        LIMIT %s
        """,
        [terms, limit],
    )


def search_pull_requests(conn: psycopg.Connection[Any], terms: str, limit: int = 20) -> list[Row]:
    """Full-text search over PR titles and descriptions (idx_pr_tracking_text_search)."""
    return _all(
        conn,
        """
        SELECT id, repository_name, pr_number, title, status
        FROM pr_tracking
        WHERE to_tsvector('english', title || ' ' || COALESCE(description, ''))
              @@ websearch_to_tsquery('english', %s)
        ORDER BY updated_at DESC
        LIMIT %s
        """,
        [terms, limit],
    )


# -- Index strategies 1 and 2: partial and composite indexes -----------------------


def active_workflow_queue(conn: psycopg.Connection[Any], limit: int = 20) -> list[Row]:
    """What runs next: pending and running workflows by priority (idx_workflows_active_priority)."""
    return _all(
        conn,
        """
        SELECT id, name, status, priority, created_at FROM workflows
        WHERE status IN ('pending', 'running')
        ORDER BY priority DESC, created_at DESC
        LIMIT %s
        """,
        [limit],
    )


def running_high_priority(conn: psycopg.Connection[Any], min_priority: int = 5) -> list[Row]:
    """The guide's troubleshooting query ('Analyze query plans')."""
    return _all(
        conn,
        """
        SELECT * FROM workflows
        WHERE status = 'running'
          AND priority > %s
        ORDER BY created_at DESC
        LIMIT 10
        """,
        [min_priority],
    )


def workflows_in(
    conn: psycopg.Connection[Any], environment: str, status: str, limit: int = 50
) -> list[Row]:
    """'Workflow queries by environment and status' (idx_workflows_env_status_priority)."""
    return _all(
        conn,
        """
        SELECT id, name, priority FROM workflows
        WHERE environment = %s AND status = %s
        ORDER BY priority DESC
        LIMIT %s
        """,
        [environment, status, limit],
    )


def open_prs_by_quality(conn: psycopg.Connection[Any], limit: int = 20) -> list[Row]:
    """Review queue: the best open PRs first (idx_pr_tracking_open_quality)."""
    return _all(
        conn,
        """
        SELECT id, repository_name, pr_number, title, quality_score, test_coverage_percentage
        FROM pr_tracking
        WHERE status = 'open'
        ORDER BY quality_score DESC, test_coverage_percentage DESC
        LIMIT %s
        """,
        [limit],
    )


def repository_prs(
    conn: psycopg.Connection[Any], repository: str, status: str, limit: int = 20
) -> list[Row]:
    """'PR tracking by repository and status' (idx_pr_tracking_repo_status_updated)."""
    return _all(
        conn,
        """
        SELECT id, pr_number, title, updated_at FROM pr_tracking
        WHERE repository_name = %s AND status = %s
        ORDER BY updated_at DESC
        LIMIT %s
        """,
        [repository, status, limit],
    )


def latest_agent_session(
    conn: psycopg.Connection[Any], agent_name: str, agent_type: str
) -> Row | None:
    """'Agent session lookup by name and type' (idx_agent_sessions_name_type_activity)."""
    return _one(
        conn,
        """
        SELECT * FROM agent_sessions
        WHERE agent_name = %s AND agent_type = %s
        ORDER BY last_activity_at DESC
        LIMIT 1
        """,
        [agent_name, agent_type],
    )


def fastest_active_agents(
    conn: psycopg.Connection[Any], seen_within: timedelta, limit: int = 10
) -> list[Row]:
    """Route work to the fastest active agents (idx_agent_sessions_active_performance).

    The guide's index predicate held 'last_activity_at > NOW() - 1 hour', which
    PostgreSQL cannot index; the time condition is here instead.
    """
    return _all(
        conn,
        """
        SELECT id, agent_name, avg_response_time_ms, total_requests FROM agent_sessions
        WHERE status = 'active'
          AND last_activity_at > NOW() - %s
        ORDER BY avg_response_time_ms ASC, total_requests DESC
        LIMIT %s
        """,
        [seen_within, limit],
    )


def latest_interactions(
    conn: psycopg.Connection[Any], session_ids: list[int], per_session: int = 5
) -> list[Row]:
    """The last interactions of several sessions in one query (no N+1)."""
    return _all(
        conn,
        """
        SELECT s.id AS session_id, i.interaction_type, i.duration_ms, i.created_at
        FROM unnest(%s::bigint[]) AS s(id)
        CROSS JOIN LATERAL (
            SELECT interaction_type, duration_ms, created_at FROM agent_interactions
            WHERE session_id = s.id
            ORDER BY created_at DESC
            LIMIT %s
        ) AS i
        """,
        [session_ids, per_session],
    )


# -- Workflow state transitions ---------------------------------------------------------


def transition(
    conn: psycopg.Connection[Any], workflow_id: int, status: str, actor: str = "ci-bot"
) -> Row:
    """Move a workflow to ``status`` (validated, audited) and commit."""
    with conn.transaction():
        row = _one(
            conn,
            "SELECT * FROM transition_workflow_status(%s, %s, %s)",
            [workflow_id, status, actor],
        )
    assert row is not None
    return row


# -- Performance testing: the guide's load-test operations ---------------------------


def create_workflow(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    workflow_type: str,
    environment: str,
    priority: int,
) -> int:
    """createWorkflow({name, workflow_type, environment, priority})."""
    row = conn.execute(
        """
        INSERT INTO workflows (name, workflow_type, environment, priority)
        VALUES (%s, %s, %s, %s)
        RETURNING id
        """,
        [name, workflow_type, environment, priority],
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def create_agent_session(conn: psycopg.Connection[Any], *, agent_name: str, agent_type: str) -> int:
    """createAgentSession({agent_name, agent_type})."""
    row = conn.execute(
        "INSERT INTO agent_sessions (agent_name, agent_type) VALUES (%s, %s) RETURNING id",
        [agent_name, agent_type],
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def record_agent_interaction(
    conn: psycopg.Connection[Any], session_id: int, interaction: dict[str, Any]
) -> None:
    """recordAgentInteraction(session.id, {...}): the row plus the session's running stats."""
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO agent_interactions
                (session_id, interaction_type, request_data, response_data,
                 duration_ms, tokens_used, success)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            """,
            [
                session_id,
                interaction["interaction_type"],
                Jsonb(interaction["request_data"]),
                Jsonb(interaction["response_data"]),
                interaction["duration_ms"],
                interaction["tokens_used"],
                interaction["success"],
            ],
        )
        conn.execute(
            """
            UPDATE agent_sessions
               SET avg_response_time_ms = (avg_response_time_ms * total_requests + %(ms)s)
                                          / (total_requests + 1),
                   total_requests   = total_requests + 1,
                   failed_requests  = failed_requests + CASE WHEN %(ok)s THEN 0 ELSE 1 END,
                   total_tokens     = total_tokens + %(tokens)s,
                   last_activity_at = now(),
                   updated_at       = now()
             WHERE id = %(id)s
            """,
            {
                "ms": interaction["duration_ms"],
                "ok": interaction["success"],
                "tokens": interaction["tokens_used"],
                "id": session_id,
            },
        )


def store_benchmark_result(
    conn: psycopg.Connection[Any], name: str, value_ms: float, dimensions: dict[str, Any]
) -> None:
    """'Benchmark Results Tracking': the guide's INSERT INTO system_metrics."""
    conn.execute(
        """
        INSERT INTO system_metrics (
            metric_category, metric_name, metric_type, numeric_value,
            dimensions, source_system
        ) VALUES (
            'performance', %s, 'timer', %s,
            %s,
            'performance_test'
        )
        """,
        [name, value_ms, Jsonb(dimensions)],
    )
    conn.commit()


# -- Maintenance ------------------------------------------------------------------------


def weekly_maintenance(conn: psycopg.Connection[Any]) -> None:
    """The guide's weekly procedure, minus what cannot run inside a DO block.

    The guide's DO block also runs ANALYZE and VACUUM: VACUUM cannot run inside
    a function or transaction block (PostgreSQL raises "VACUUM cannot be
    executed from a function"), so a scheduler runs those as separate statements.
    """
    conn.execute(
        """
        DO $$
        BEGIN
            -- Clean up old audit logs
            PERFORM cleanup_old_audit_logs();

            -- Update aggregated metrics
            PERFORM calculate_aggregated_metrics();
        END $$
        """
    )
    conn.commit()
