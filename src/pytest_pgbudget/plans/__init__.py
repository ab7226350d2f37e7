"""Plan analysis: findings from PostgreSQL ``EXPLAIN (FORMAT JSON)`` plans."""

from pytest_pgbudget.plans.analysis import (
    EXTERNAL_SORT,
    MARKER,
    MULTI_BATCH_HASH,
    TEMP_FILE,
    Node,
    PlanFormatError,
    PlanSummary,
    SeqScan,
    Spill,
    analyze_plan,
    describe_node,
    index_hint,
    iter_nodes,
    plan_root,
    render_plan,
)

__all__ = [
    "EXTERNAL_SORT",
    "MARKER",
    "MULTI_BATCH_HASH",
    "TEMP_FILE",
    "Node",
    "PlanFormatError",
    "PlanSummary",
    "SeqScan",
    "Spill",
    "analyze_plan",
    "describe_node",
    "index_hint",
    "iter_nodes",
    "plan_root",
    "render_plan",
]
