-- Workflow state machine and the maintenance functions the guide's weekly
-- procedure calls (cleanup_old_audit_logs, calculate_aggregated_metrics).

-- Which status changes a workflow may make:
--   pending  -> running | cancelled
--   running  -> completed | failed | cancelled
--   failed   -> pending            (a retry)
--   completed, cancelled           (final)
CREATE FUNCTION workflow_transition_allowed(from_status text, to_status text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE from_status
        WHEN 'pending' THEN to_status IN ('running', 'cancelled')
        WHEN 'running' THEN to_status IN ('completed', 'failed', 'cancelled')
        WHEN 'failed'  THEN to_status = 'pending'
        ELSE false
    END
$$;

-- Move a workflow to a new status: lock it, validate the transition, update it
-- and write the audit trail, in the caller's transaction. The guide's target:
-- a state transition completes in under 50 ms.
CREATE FUNCTION transition_workflow_status(
    p_workflow_id bigint,
    p_new_status  text,
    p_actor       text DEFAULT 'system'
)
RETURNS workflows
LANGUAGE plpgsql
AS $$
DECLARE
    v_current workflows;
    v_updated workflows;
BEGIN
    SELECT * INTO v_current FROM workflows WHERE id = p_workflow_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'workflow % does not exist', p_workflow_id
            USING ERRCODE = 'no_data_found';
    END IF;

    IF NOT workflow_transition_allowed(v_current.status, p_new_status) THEN
        RAISE EXCEPTION 'workflow %: invalid status transition % -> %',
            p_workflow_id, v_current.status, p_new_status
            USING ERRCODE = 'check_violation',
                  HINT = 'allowed: pending->running|cancelled, running->completed|failed|cancelled, failed->pending';
    END IF;

    UPDATE workflows
       SET status       = p_new_status,
           updated_at   = now(),
           started_at   = CASE WHEN p_new_status = 'running' THEN now()
                               WHEN p_new_status = 'pending' THEN NULL
                               ELSE started_at END,
           completed_at = CASE WHEN p_new_status IN ('completed', 'failed', 'cancelled') THEN now()
                               ELSE NULL END
     WHERE id = p_workflow_id
    RETURNING * INTO v_updated;

    INSERT INTO audit_logs_enhanced
        (entity_type, entity_id, action, actor, old_values, new_values, security_level, details)
    VALUES (
        'workflow', p_workflow_id, 'status_transition', p_actor,
        jsonb_build_object('status', v_current.status),
        jsonb_build_object('status', p_new_status),
        -- Production changes are what a security review looks at.
        CASE WHEN v_current.environment = 'production' THEN 'high' ELSE 'low' END,
        jsonb_build_object('environment', v_current.environment,
                           'workflow_type', v_current.workflow_type)
    );

    RETURN v_updated;
END
$$;

-- Retention: low and medium audit rows are kept p_retention (90 days), high
-- and critical ones p_high_retention (a year). Returns the rows deleted.
CREATE FUNCTION cleanup_old_audit_logs(
    p_retention      interval DEFAULT interval '90 days',
    p_high_retention interval DEFAULT interval '365 days'
)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_deleted bigint;
BEGIN
    DELETE FROM audit_logs_enhanced
     WHERE "timestamp" < now() - least(p_retention, p_high_retention)
       AND (security_level IN ('low', 'medium')
            OR "timestamp" < now() - p_high_retention);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;

-- Roll one hour of raw system_metrics up into one 'aggregate' row per metric
-- (avg in numeric_value; count, min, max and p95 in dimensions). Re-running
-- it for the same hour replaces that hour's aggregates. Returns the rows written.
CREATE FUNCTION calculate_aggregated_metrics(
    p_hour timestamptz DEFAULT date_trunc('hour', now()) - interval '1 hour'
)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_hour    timestamptz := date_trunc('hour', p_hour);
    v_written bigint;
BEGIN
    DELETE FROM system_metrics
     WHERE "timestamp" = v_hour
       AND metric_type = 'aggregate';

    INSERT INTO system_metrics
        (metric_category, metric_name, metric_type, numeric_value, dimensions, source_system, "timestamp")
    SELECT metric_category,
           metric_name || '.hourly',
           'aggregate',
           avg(numeric_value),
           jsonb_build_object(
               'count', count(*),
               'min', min(numeric_value),
               'max', max(numeric_value),
               'p95', percentile_cont(0.95) WITHIN GROUP (ORDER BY numeric_value)),
           'calculate_aggregated_metrics',
           v_hour
      FROM system_metrics
     WHERE "timestamp" >= v_hour
       AND "timestamp" <  v_hour + interval '1 hour'
       AND metric_type <> 'aggregate'
     GROUP BY metric_category, metric_name;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    RETURN v_written;
END
$$;
