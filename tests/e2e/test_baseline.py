"""End-to-end: save a baseline, change the code or the schema, compare."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

SCHEMA = """\
CREATE TABLE workflows (id serial PRIMARY KEY, name text NOT NULL, status text NOT NULL);
INSERT INTO workflows (name, status)
  SELECT 'wf' || g, CASE WHEN g % 50 = 0 THEN 'running' ELSE 'completed' END
  FROM generate_series(1, 30000) g;
CREATE INDEX idx_workflows_name ON workflows (name);
"""

TESTS = """\
import os

def test_lookup(pg_conn):
    pg_conn.execute("SELECT * FROM workflows WHERE name = %s", ["wf42"]).fetchall()

def test_listing(pg_conn):
    ids = [1, 2, 3]
    if os.environ.get("N_PLUS_ONE"):
        for i in ids:
            pg_conn.execute("SELECT * FROM workflows WHERE id = %s", [i]).fetchall()
    else:
        pg_conn.execute("SELECT * FROM workflows WHERE id = ANY(%s)", [ids]).fetchall()

def test_untouched(pg_conn):
    pg_conn.execute("SELECT count(*) FROM workflows WHERE status = 'running'").fetchall()
"""


@pytest.fixture
def proj(project):
    return project("pgbudget_schema = schema.sql\n", schema_sql=SCHEMA, test_wf_py=TESTS)


def test_save_then_compare_unchanged_passes(proj: pytest.Pytester) -> None:
    saved = proj.runpytest_subprocess("--pgbudget-save-baseline")
    saved.assert_outcomes(passed=3)
    saved.stdout.fnmatch_lines(
        ["*baseline saved: */.pgbudget/baseline.json (3 tests recorded, 0 kept)"]
    )
    path = proj.path / ".pgbudget" / "baseline.json"
    document = json.loads(path.read_text())
    assert document["format"] == "pytest-pgbudget-baseline" and document["version"] == 1
    assert document["server"]["version"] and document["machine"]["cpus"]
    entry = document["tests"]["test_wf.py::test_lookup"]
    assert entry["queries"] == 1
    (statement,) = entry["statements"].values()
    assert statement["shapes"] == [["Index Scan using idx_workflows_name on workflows"]]
    assert list(document["tests"]) == sorted(document["tests"])  # stable order
    oct_mode = path.stat().st_mode & 0o777
    assert oct_mode & 0o044, oct(oct_mode)  # a normal, committable file

    compared = proj.runpytest_subprocess("--pgbudget-compare")
    compared.assert_outcomes(passed=3)
    compared.stdout.fnmatch_lines(["*baseline */baseline.json: 3 same*"])


def test_dropped_index_fails_naming_it(proj: pytest.Pytester) -> None:
    proj.runpytest_subprocess("--pgbudget-save-baseline").assert_outcomes(passed=3)
    (proj.path / "schema.sql").write_text(SCHEMA.replace("CREATE INDEX", "-- CREATE INDEX"))
    result = proj.runpytest_subprocess("--pgbudget-compare")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_lookup _*",
            "baseline regression (2) against */.pgbudget/baseline.json:",
            "[1] plan of SELECT * FROM workflows WHERE name = $1: "
            "Index Scan using idx_workflows_name on workflows became Seq Scan on workflows",
            "*before: Index Scan using idx_workflows_name on workflows",
            "*after:  Seq Scan on workflows",
            "?2? buffers of SELECT * FROM workflows WHERE name = $1: * -> * (+*%, allowed buffers:20%)",
        ]
    )


def test_added_n_plus_one_lists_the_added_statements(proj: pytest.Pytester, monkeypatch) -> None:
    proj.runpytest_subprocess("--pgbudget-save-baseline").assert_outcomes(passed=3)
    monkeypatch.setenv("N_PLUS_ONE", "1")
    result = proj.runpytest_subprocess("--pgbudget-compare")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*_ test_listing _*", "[1] queries: 1 -> 3, allowed queries:+0"])
    result.stdout.fnmatch_lines_random(
        [
            "*added 3x (0 -> 3): SELECT * FROM workflows WHERE id = $1  *",
            "*removed 1x (1 -> 0): SELECT * FROM workflows WHERE id = ANY($1)  *",
        ]
    )


def test_noisy_timings_pass_under_the_default_rules(proj: pytest.Pytester) -> None:
    proj.runpytest_subprocess("--pgbudget-save-baseline").assert_outcomes(passed=3)
    path = proj.path / ".pgbudget" / "baseline.json"
    document = json.loads(path.read_text())
    for entry in document["tests"].values():  # pretend the baseline machine was 1000x faster
        entry["latency"] = {k: v / 1000 for k, v in entry["latency"].items()}
        for statement in entry["statements"].values():
            for key in ("p50_ms", "p95_ms", "max_ms"):
                statement[key] /= 1000
    path.write_text(json.dumps(document))
    proj.runpytest_subprocess("--pgbudget-compare").assert_outcomes(passed=3)
    strict = proj.runpytest_subprocess("--pgbudget-compare", "--pgbudget-compare-fail=p95_ms:100%")
    strict.assert_outcomes(failed=3)
    strict.stdout.fnmatch_lines(["*p95_ms: * -> * (+*%, allowed p95_ms:100%)*"])


def test_new_and_missing_tests_are_reported_not_failed(proj: pytest.Pytester) -> None:
    proj.runpytest_subprocess(
        "--pgbudget-save-baseline", "-k", "lookup or listing"
    ).assert_outcomes(passed=2)
    result = proj.runpytest_subprocess("--pgbudget-compare", "-k", "untouched or lookup")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*baseline */baseline.json: 1 new, 1 same, 1 in the baseline but not run*",
            "*new (not in the baseline): test_wf.py::test_untouched*",
        ]
    )


def test_saving_a_subset_keeps_the_rest_and_prunes_deleted_tests(proj: pytest.Pytester) -> None:
    proj.runpytest_subprocess("--pgbudget-save-baseline").assert_outcomes(passed=3)
    result = proj.runpytest_subprocess("--pgbudget-save-baseline", "-k", "lookup")
    result.stdout.fnmatch_lines(["*baseline saved: * (1 tests recorded, 2 kept)*"])
    (proj.path / "test_wf.py").write_text(TESTS.split("def test_untouched")[0])
    result = proj.runpytest_subprocess("--pgbudget-save-baseline", "-k", "lookup")
    result.stdout.fnmatch_lines(["*baseline saved: * (1 tests recorded, 1 kept, 1 removed)*"])
    tests = json.loads((proj.path / ".pgbudget" / "baseline.json").read_text())["tests"]
    assert sorted(tests) == ["test_wf.py::test_listing", "test_wf.py::test_lookup"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"format": "pytest-pgbudget-baseline", "version": 1, "tests": {"a"',
            "*is corrupt (truncated or edited?)*",
        ),
        (
            '{"format": "pytest-pgbudget-baseline", "version": 99, "tests": {}}',
            "*has format version 99; this pytest-pgbudget reads version 1*",
        ),
        ('{"something": "else"}', "*is not a pytest-pgbudget baseline*"),
    ],
)
def test_bad_baseline_is_a_clear_error_and_is_kept(
    proj: pytest.Pytester, content: str, expected: str
) -> None:
    path = proj.path / ".pgbudget" / "baseline.json"
    path.parent.mkdir()
    path.write_text(content)
    for flag in ("--pgbudget-compare", "--pgbudget-save-baseline"):
        result = proj.runpytest_subprocess(flag)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([expected])
        assert str(path) in result.stderr.str()
        assert path.read_text() == content  # never silently overwritten


def test_bad_compare_rules_are_a_usage_error(proj: pytest.Pytester) -> None:
    result = proj.runpytest_subprocess("--pgbudget-compare-fail=querys:+0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown metric 'querys'*metrics: queries, plan, buffers*"])
    result = proj.runpytest_subprocess("--pgbudget-compare-fail=buffers:lots")
    result.stderr.fnmatch_lines(["*cannot parse 'buffers:lots'*"])


def test_interrupted_save_leaves_the_old_file_whole(proj: pytest.Pytester) -> None:
    """SIGKILL while the baseline is being written: the old file stays, no temp file is left."""
    proj.runpytest_subprocess("--pgbudget-save-baseline").assert_outcomes(passed=3)
    path = proj.path / ".pgbudget" / "baseline.json"
    before = path.read_text()
    proj.makeconftest(
        """
        import os, signal, time
        from pytest_pgbudget.report import records

        real = records.write_atomically

        def slow_write(path, text):
            # Die in the middle of writing, as a killed CI job would.
            import tempfile
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.write(fd, text[: len(text) // 2].encode())
            os.kill(os.getpid(), signal.SIGKILL)

        records.write_atomically = slow_write
        import pytest_pgbudget.baseline.store as store
        store.write_atomically = slow_write
        """
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pgbudget-save-baseline", "-p", "no:cacheprovider"],
        cwd=proj.path,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL
    assert path.read_text() == before
    # The torn temp file of the killed writer is left beside it, never in its place.
    assert all(p.name.startswith(".baseline.json.") for p in path.parent.iterdir() if p != path)
    (proj.path / "conftest.py").unlink()
    proj.runpytest_subprocess("--pgbudget-compare").assert_outcomes(passed=3)


def test_server_differences_warn_loudly_once(proj: pytest.Pytester) -> None:
    proj.runpytest_subprocess("--pgbudget-save-baseline").assert_outcomes(passed=3)
    path = proj.path / ".pgbudget" / "baseline.json"
    document = json.loads(path.read_text())
    document["server"]["settings"]["random_page_cost"] = "4"
    document["server"]["version"] = "9.6"
    path.write_text(json.dumps(document))
    result = proj.runpytest_subprocess("--pgbudget-compare")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert out.count("BaselineWarning: the baseline") == 1
    result.stdout.fnmatch_lines(
        ["*WARNING: baseline server differs: PostgreSQL 9.6 -> *; random_page_cost 4 -> 1.1*"]
    )


def test_xdist_merges_every_worker(proj: pytest.Pytester) -> None:
    many = TESTS + "".join(
        f"\ndef test_more_{i}(pg_conn):\n    pg_conn.execute('SELECT {i}').fetchall()\n"
        for i in range(8)
    )
    (proj.path / "test_wf.py").write_text(many)
    result = proj.runpytest_subprocess(
        "-n", "2", "--pgbudget-save-baseline", "--pgbudget-json=report.json"
    )
    result.assert_outcomes(passed=11)
    tests = json.loads((proj.path / ".pgbudget" / "baseline.json").read_text())["tests"]
    assert len(tests) == 11
    report = json.loads((proj.path / "report.json").read_text())
    assert sorted(t["nodeid"] for t in report["tests"]) == sorted(tests)
    assert report["summary"] == {"tests": 11, "statements": 11, "violations": 0}
    assert report["health"]["passed"] is True
    compared = proj.runpytest_subprocess("-n", "2", "--pgbudget-compare")
    compared.assert_outcomes(passed=11)
    compared.stdout.fnmatch_lines(["*11 same*"])


def test_json_report_schema(proj: pytest.Pytester) -> None:
    result = proj.runpytest_subprocess("--pgbudget-json=out/report.json")
    result.assert_outcomes(passed=3)
    report = json.loads((proj.path / "out" / "report.json").read_text())
    assert report["format"] == "pytest-pgbudget-report" and report["version"] == 1
    assert report["servers"][0]["backend"] in ("local", "embedded")
    lookup = next(t for t in report["tests"] if t["nodeid"].endswith("test_lookup"))
    assert lookup["outcome"] == "passed"
    (statement,) = lookup["statements"]
    assert statement["indexes"] == ["idx_workflows_name"]
    assert statement["plan"]["Plan"]["Node Type"] == "Index Scan"
    assert statement["buffers"] == statement["shared_hit"] + statement["shared_read"] > 0
    assert lookup["latency"]["count"] == 1
    assert "password" not in (proj.path / "out" / "report.json").read_text()
