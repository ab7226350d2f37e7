"""End-to-end: the flagship example (examples/cicd) passes, and fails without an index.

The example is copied into the pytester directory and run as a user runs it,
in a fresh pytest process.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cicd"


@pytest.fixture
def example(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(
        EXAMPLE,
        pytester.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"),
    )
    return pytester


def test_example_suite_passes(example: pytest.Pytester) -> None:
    result = example.runpytest_subprocess("-p", "no:randomly", "-rx")
    # Every test passes but the documented one; the example may grow, so the
    # passed count is a floor (30: the tests this file was written against).
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes.get("xfailed") == 1 and outcomes.get("passed", 0) >= 30, outcomes
    result.stdout.fnmatch_lines_random(
        [
            "*XFAIL*test_avoid_functional_expressions_on_jsonb*the guide's 'Avoid' pattern*",
            "*largest seq scans:*",
            "*100000 rows*workflows*test_jsonb_queries.py::test_avoid_functional_expressions_on_jsonb*",
        ]
    )


def test_demo_without_an_index_fails_naming_query_and_index(example: pytest.Pytester) -> None:
    # Only the JSONB tests, to keep this under CI's time budget: the full suite
    # fails the same one test.
    result = example.run(
        sys.executable,
        "demo_drop_index.py",
        "idx_workflows_tags_gin",
        "tests/test_jsonb_queries.py",
    )
    assert result.ret == 0, result.stdout.str()  # the demo exits 0 when the suite failed
    result.assert_outcomes(failed=1, passed=6, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "$ python -m pytest --drop-index idx_workflows_tags_gin tests/test_jsonb_queries.py",
            "demo: template built without idx_workflows_tags_gin",
            "*_ test_tag_containment_uses_the_gin_index _*",
            "3 pgbudget violations in tests/test_jsonb_queries.py::test_tag_containment_uses_the_gin_index:",
            "[[]1[]] Seq Scan on workflows (100000 rows): budget forbids seq scans over 1000 rows",
            "    statement: SELECT * FROM workflows WHERE tags @> $1",
            "*>> Seq Scan on workflows*",
        ]
    )
    result.stdout.fnmatch_lines_random(
        [
            "[[]3[]] index idx_workflows_tags_gin does not exist in the test database",
            "FAILED tests/test_jsonb_queries.py::test_tag_containment_uses_the_gin_index*",
            "demo: without idx_workflows_tags_gin the suite fails, as it should (pytest exit status 1).",
        ]
    )
