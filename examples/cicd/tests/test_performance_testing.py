"""Guide: "Performance Testing" - the load tests, with the guide's targets as budgets.

Each worker thread has its own connection, as a pool would hand out. Every
statement on every connection to the test's database is captured, so p95_ms
is the 95th percentile of all of them (with 20 or more samples it is a real
percentile, not the maximum).
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import cicd_db as db
import pytest

from pytest_pgbudget import pgbudget

POOL_SIZE = 10  # the guide's pool: min 2, max 20 connections


@pytest.fixture
def pool(pg_db):
    """A fixed set of connections, one per worker thread."""
    connections = [pg_db.connect() for _ in range(POOL_SIZE)]
    yield connections
    for conn in connections:
        conn.close()


def run_concurrently(pool, tasks):
    """Run ``task(conn)`` for every task, POOL_SIZE at a time; return results and ms."""
    chunks = [tasks[i :: len(pool)] for i in range(len(pool))]

    def work(conn, mine):
        return [task(conn) for task in mine]

    start = time.perf_counter()
    with ThreadPoolExecutor(len(pool)) as executor:
        results = [r for chunk in executor.map(work, pool, chunks) for r in chunk]
    return results, (time.perf_counter() - start) * 1000


@pgbudget(p95_ms=100, max_queries=101)
def test_concurrent_workflow_creation(pool, pg_conn):
    # testConcurrentWorkflows(concurrency = 100)
    rng = random.Random(7)
    priorities = [rng.randrange(10) for _ in range(100)]
    tasks = [
        lambda conn, i=i, p=p: db.create_workflow(
            conn, name=f"Test Workflow {i}", workflow_type="ci_cd", environment="test", priority=p
        )
        for i, p in enumerate(priorities)
    ]
    ids, duration = run_concurrently(pool, tasks)
    assert len(set(ids)) == 100
    print(f"Created 100 workflows in {duration:.0f}ms; average {duration / 100:.2f}ms per workflow")
    # "Store benchmark results", as the guide does
    db.store_benchmark_result(
        pg_conn,
        "benchmark_workflow_creation",
        duration / 100,
        {"concurrency": 100, "test_type": "load_test"},
    )


@pgbudget(p95_ms=100)
def test_agent_session_performance(pool, pg_conn):
    # testAgentSessionPerformance(sessionCount = 50)
    sessions = [
        db.create_agent_session(pg_conn, agent_name=f"test_agent_{i}", agent_type="ai_assistant")
        for i in range(50)
    ]
    rng = random.Random(7)
    interactions = [
        {
            "interaction_type": "chat",
            "request_data": {"message": "test"},
            "response_data": {"response": "test response"},
            "duration_ms": rng.randrange(1000),
            "tokens_used": rng.randrange(100),
            "success": True,
        }
        for _ in sessions
    ]
    tasks = [
        lambda conn, s=s, i=i: db.record_agent_interaction(conn, s, i)
        for s, i in zip(sessions, interactions, strict=True)
    ]
    _, duration = run_concurrently(pool, tasks)
    print(f"Processed 50 interactions in {duration:.0f}ms; average {duration / 50:.2f}ms each")

    stats = pg_conn.execute(
        "SELECT total_requests, avg_response_time_ms FROM agent_sessions WHERE id = ANY(%s) ORDER BY id",
        [sessions],
    ).fetchall()
    assert [total for total, _ in stats] == [1] * 50
    assert [float(avg) for _, avg in stats] == [float(i["duration_ms"]) for i in interactions]
