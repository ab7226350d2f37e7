"""Fault injection, end to end: killed runs, crashed workers and servers, stale
run directories, concurrent runs, long paths, odd locales, a half-built template.

Every scenario runs a small example project in a real pytest subprocess and
injects a real fault (signals, ``os._exit``, a killed postmaster). Nothing is
mocked. Clusters are found through ``/proc``: every process of a cluster runs
the ``postgres`` executable with the cluster's data directory as its working
directory, which still reads ``<data> (deleted)`` once the run dir is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import conninfo

from pytest_pgbudget.server.binaries import find_embedded, find_local

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fault injection reads /proc"),
    pytest.mark.skipif(
        find_local() is None and find_embedded() is None, reason="no local PostgreSQL binaries"
    ),
]

BACKEND = "local" if find_local() is not None else "embedded"
INI = f"pgbudget_backend = {BACKEND}\n"
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, NUL included

#: Inner conftest: the ``report`` fixture records where this process's server lives.
REPORTER = """\
    import json, os, pathlib

    import pytest
    from psycopg import conninfo

    REPORTS = pathlib.Path(__file__).parent / "reports"


    @pytest.fixture
    def report(request, pg_server):
        host = conninfo.conninfo_to_dict(pg_server.dsn)["host"]
        pidfile = pathlib.Path(host) / "data" / "postmaster.pid"
        info = {
            "host": host,
            "postmaster": int(pidfile.read_text().split()[0]),
            "pytest": os.getpid(),
            "test": request.node.name,
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        }
        REPORTS.mkdir(exist_ok=True)
        tmp = REPORTS / f".{os.getpid()}-{request.node.name}.tmp"
        tmp.write_text(json.dumps(info))
        tmp.rename(REPORTS / f"{os.getpid()}-{request.node.name}.json")
        return info
"""


# -- /proc helpers -------------------------------------------------------------


def _running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (an unreaped zombie holds nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def cluster_processes(data: Path) -> set[int]:
    """Live postgres processes serving the data directory ``data``."""
    wanted = {os.path.realpath(data), f"{os.path.realpath(data)} (deleted)"}
    found = set()
    for pid in _pids():
        try:
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if exe in ("postgres", "postmaster") and cwd in wanted and _running(pid):
            found.add(pid)
    return found


def lingering(run: Path) -> dict[int, str]:
    """Every live process of ``run``'s cluster, or naming ``run`` (the watchdog)."""
    found = {pid: "postgres" for pid in cluster_processes(run / "data")}
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(run) in cmdline and _running(pid):
            found[pid] = cmdline
    return found


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def assert_swept(run: Path, timeout: float = 10.0) -> None:
    """Within ``timeout``, nothing of ``run``'s cluster runs and its directory is gone."""
    wait_until(lambda: not lingering(run) and not run.exists(), timeout)
    left = lingering(run)
    assert not left, f"still running {timeout:g}s later for {run}: {left}"
    assert not run.exists(), f"run dir {run} survived: {sorted(p.name for p in run.iterdir())}"


# -- starting inner runs ---------------------------------------------------------


class Inner:
    """An inner pytest run started with ``subprocess.Popen``, output kept in files."""

    def __init__(
        self,
        pytester: pytest.Pytester,
        *args: str,
        name: str = "inner",
        env: dict[str, str | None] | None = None,
        new_session: bool = False,
        basetemp: Path | None = None,
    ) -> None:
        self.dir = pytester.path
        self.out = self.dir / f"{name}.out"
        self.err = self.dir / f"{name}.err"
        environ = {
            k: v for k, v in os.environ.items() if not k.startswith(("PGBUDGET_", "PYTEST_"))
        }
        environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(self.dir), environ.get("PYTHONPATH")])
        )
        for key, value in (env or {}).items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        basetemp = basetemp or self.dir / f"basetemp-{name}"
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            f"--basetemp={basetemp}",
            *args,
        ]
        self.started = time.monotonic()
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.popen = subprocess.Popen(
                argv,
                cwd=self.dir,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=new_session,
            )
        self.new_session = new_session

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return (
            self.out.read_text(errors="replace")
            + "\n--- stderr ---\n"
            + self.err.read_text(errors="replace")
        )

    def result(self, timeout: float = 60.0) -> pytest.RunResult:
        try:
            ret = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"inner run still going after {timeout:g}s (a hang):\n{self.output()}")
        out = self.out.read_text(errors="replace").splitlines()
        err = self.err.read_text(errors="replace").splitlines()
        return pytest.RunResult(ret, out, err, time.monotonic() - self.started)

    def reports(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted((self.dir / "reports").glob("*.json"))]

    def wait_report(self, test: str, timeout: float = 30.0) -> dict[str, Any]:
        """The ``report`` of ``test`` once it ran, failing if the run ends first."""

        def find() -> dict[str, Any] | None:
            return next(
                (r for r in self.reports() if r["test"] == test and r["pytest"] == self.pid), None
            )

        found = wait_until(lambda: find() or self.popen.poll() is not None, timeout)
        info = find()
        if info is None:
            self.kill()
            pytest.fail(f"{test} never reported its server ({found=}):\n{self.output()}")
        return info

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self.new_session:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                else:
                    self.popen.kill()
        self.popen.wait()


@pytest.fixture
def cleanup() -> Iterator[dict[str, list[Any]]]:
    """What a test started; anything still running afterwards is stopped by id."""
    started: dict[str, list[Any]] = {"procs": [], "runs": [], "paths": []}
    yield started
    for proc in started["procs"]:
        if isinstance(proc, Inner):
            proc.kill()
        elif proc.poll() is None:
            proc.kill()
            proc.wait()
        else:
            proc.wait()
    for run in started["runs"]:  # only what the plugin failed to stop: immediate, then kill
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            left = cluster_processes(run / "data")
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            wait_until(lambda run=run: not cluster_processes(run / "data"), 5)
        shutil.rmtree(run, ignore_errors=True)
    for path in started["paths"]:
        shutil.rmtree(path, ignore_errors=True)
    for server in started.get("roles", []):
        with server.connect() as admin:
            admin.execute("DROP ROLE IF EXISTS pgb_reliability")


def _track(cleanup: dict[str, list[Any]], *reports: dict[str, Any]) -> list[Path]:
    runs = []
    for info in reports:
        run = Path(info["host"])
        if run not in runs:
            runs.append(run)
    cleanup["runs"].extend(runs)
    return runs


# -- 1. kill -9 ------------------------------------------------------------------


HANG_TESTS = """\
    import time

    def test_hangs(pg_conn, report):
        pg_conn.execute("CREATE TABLE t (id int)")
        time.sleep(120)

    def test_quick(pg_conn):
        assert pg_conn.execute("SELECT 1").fetchone()[0] == 1
"""


def test_kill_9_of_pytest_leaves_no_server(project, cleanup) -> None:
    pytester = project(INI, conftest_py=REPORTER, test_hang_py=HANG_TESTS)
    inner = Inner(pytester, "-k", "hangs")
    cleanup["procs"].append(inner)
    info = inner.wait_report("test_hangs")
    (run,) = _track(cleanup, info)
    assert info["postmaster"] in cluster_processes(run / "data")

    os.kill(inner.pid, signal.SIGKILL)
    inner.popen.wait()

    assert_swept(run)
    # The next run in the same project is not disturbed by what the killed one left.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "quick", timeout=60)
    result.assert_outcomes(passed=1)


def _watchdogs(run: Path) -> list[int]:
    found = []
    for pid in _pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pytest_pgbudget.server.watchdog" in cmdline and str(run).encode() in cmdline:
            found.append(pid)
    return found


def test_orphaned_cluster_is_swept_by_the_next_run(project, cleanup) -> None:
    """pytest and its watchdog die together (OOM killer, ``kill -9 -1``): the next run sweeps."""
    pytester = project(INI, conftest_py=REPORTER, test_hang_py=HANG_TESTS)
    inner = Inner(pytester, "-k", "hangs")
    cleanup["procs"].append(inner)
    info = inner.wait_report("test_hangs")
    (run,) = _track(cleanup, info)
    watchdogs = _watchdogs(run)
    assert len(watchdogs) == 1, watchdogs

    os.kill(watchdogs[0], signal.SIGKILL)
    assert wait_until(lambda: not _running(watchdogs[0]), 5)
    time.sleep(0.2)
    # Checked while the owner lives: no run (ours or a concurrent one) may sweep it yet.
    assert info["postmaster"] in cluster_processes(run / "data"), "the watchdog's death stopped it"
    os.kill(inner.pid, signal.SIGKILL)
    inner.popen.wait()

    # Its owner and watchdog are dead: the next run's sweep (or any concurrent run's) stops it.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "quick", timeout=60)
    result.assert_outcomes(passed=1)
    assert_swept(run)


# -- 2. Ctrl-C -------------------------------------------------------------------


def test_ctrl_c_tears_down_cleanly(project, cleanup) -> None:
    pytester = project(INI, conftest_py=REPORTER, test_hang_py=HANG_TESTS)
    inner = Inner(pytester, "-k", "hangs", new_session=True)
    cleanup["procs"].append(inner)
    info = inner.wait_report("test_hangs")
    (run,) = _track(cleanup, info)

    os.killpg(os.getpgid(inner.pid), signal.SIGINT)
    result = inner.result(timeout=30)

    assert result.ret == pytest.ExitCode.INTERRUPTED, inner.output()
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    assert "Traceback" not in result.stderr.str(), inner.output()
    assert "error" not in result.parseoutcomes(), inner.output()  # no teardown errors
    assert_swept(run)


# -- 3. a crashed xdist worker -----------------------------------------------------


def test_crashed_xdist_worker_is_swept(project, cleanup) -> None:
    pytest.importorskip("xdist")
    pytester = project(
        INI,
        conftest_py=REPORTER,
        test_crash_py="""
        import os, pytest

        @pytest.mark.parametrize("i", range(4))
        def test_ok(pg_conn, report, i):
            assert pg_conn.execute("SELECT %s::int", [i]).fetchone()[0] == i

        def test_crash(pg_conn, report):
            pg_conn.execute("CREATE TABLE t (id int)")
            os._exit(1)
        """,
    )
    inner = Inner(pytester, "-n", "2")
    cleanup["procs"].append(inner)
    result = inner.result(timeout=60)
    reports = inner.reports()
    runs = _track(cleanup, *reports)

    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*worker*crashed while running*test_crash*"])
    crashed = next(r for r in reports if r["test"] == "test_crash")
    assert not _running(crashed["pytest"])
    assert len(runs) >= 2  # the crashed worker's cluster and at least one other
    for run in runs:
        assert_swept(run)


# -- 4. the server dies mid-test ----------------------------------------------------


SERVER_DIES = """\
    import os, signal, time

    def test_server_dies(pg_conn, report):
        os.kill(report["postmaster"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pg_conn.execute("SELECT 1")
            time.sleep(0.05)
        raise AssertionError("the connection outlived its server by 30 s")

    def test_after_1(pg_conn):
        pass

    def test_after_2(pg_conn):
        pass
"""


def _server_dies(project, cleanup) -> tuple[Inner, pytest.RunResult]:
    pytester = project(INI, conftest_py=REPORTER, test_dies_py=SERVER_DIES)
    inner = Inner(pytester)
    cleanup["procs"].append(inner)
    result = inner.result(timeout=60)  # a hang fails here
    (run,) = _track(cleanup, *inner.reports())
    assert_swept(run)
    return inner, result


def test_server_crash_mid_test_fails_crisply(project, cleanup) -> None:
    inner, result = _server_dies(project, cleanup)
    out = result.stdout.str()
    assert result.duration < 30, f"took {result.duration:.1f}s"
    assert result.ret == 3, inner.output()
    message = f"pytest-pgbudget: the PostgreSQL server ({BACKEND} backend) is no longer running"
    assert out.count(message) == 1, inner.output()  # said once, not per remaining test
    result.stdout.fnmatch_lines(["test_dies.py F*"])
    assert "passed" not in result.parseoutcomes()


def test_server_crash_failure_reason_is_shown(project, cleanup) -> None:
    _inner, result = _server_dies(project, cleanup)
    result.stdout.fnmatch_lines(["*FAILED test_dies.py::test_server_dies - psycopg.*"])


# -- 5. stale run directories --------------------------------------------------------


def _stale_dir(cleanup: dict[str, list[Any]]) -> Path:
    """A run dir as a dead run leaves it, still without owner and ``postmaster.pid``."""
    path = Path(tempfile.mkdtemp(prefix="pgbudget-run-stale", dir="/tmp"))
    cleanup["paths"].append(path)
    (path / "data").mkdir()
    (path / "log").mkdir()
    (path / "data" / "PG_VERSION").write_text("15\n")
    return path


def _orphan(path: Path, owner: int, postmaster: int) -> None:
    """Name ``postmaster`` in ``postmaster.pid``, then the dead ``owner``."""
    data = path / "data"
    (data / "postmaster.pid").write_text(
        f"{postmaster}\n{data}\n{int(time.time()) - 3600}\n5432\n{path}\n\n  1234567   7\nready   \n"
    )
    (path / "owner.json").write_text(
        json.dumps({"pid": owner, "start": "1", "time": time.time() - 3600})
    )


def test_stale_run_dirs_are_swept_without_signalling_strangers(project, cleanup, tmp_path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = gone.pid
    dir_a, dir_b, dir_c = (_stale_dir(cleanup) for _ in range(3))
    # (a) postmaster.pid names a dead process
    _orphan(dir_a, dead, dead)
    # (b) it names a live sleep whose working directory is even that data dir
    sleeper = subprocess.Popen(["sleep", "60"], cwd=dir_b / "data")
    cleanup["procs"].append(sleeper)
    _orphan(dir_b, dead, sleeper.pid)
    # (c) it names a live process called "postgres" that serves another directory
    fake_bin = tmp_path / "postgres"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", fake_bin)
    impostor = subprocess.Popen([str(fake_bin), "60"], cwd=tmp_path)
    cleanup["procs"].append(impostor)
    _orphan(dir_c, dead, impostor.pid)
    assert wait_until(lambda: os.readlink(f"/proc/{impostor.pid}/exe") == str(fake_bin), 5)
    assert wait_until(lambda: os.readlink(f"/proc/{sleeper.pid}/cwd") == str(dir_b / "data"), 5)

    pytester = project(INI, test_s_py="def test_a(pg_conn):\n    pg_conn.execute('SELECT 1')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1)

    for path in (dir_a, dir_b, dir_c):
        assert not path.exists(), f"stale {path} survived a run"
    time.sleep(0.2)  # a signal, had one been sent, has landed by now
    assert sleeper.poll() is None and _running(sleeper.pid), "a non-postgres process was signalled"
    assert impostor.poll() is None and _running(impostor.pid), (
        "another directory's postgres was signalled"
    )


# -- 6. concurrent runs ----------------------------------------------------------------


def test_two_concurrent_runs(project, cleanup) -> None:
    pytester = project(
        INI,
        conftest_py=REPORTER,
        test_c_py="""
        import pathlib, time

        def test_together(pg_conn, report):
            pg_conn.execute("CREATE TABLE same_name (id int)")
            reports = pathlib.Path(__file__).parent / "reports"
            deadline = time.monotonic() + 30
            while len(list(reports.glob("*.json"))) < 2:  # both servers up at once
                assert time.monotonic() < deadline, "the other run never started"
                time.sleep(0.05)
            assert pg_conn.execute("SELECT count(*) FROM same_name").fetchone()[0] == 0
        """,
    )
    # A fresh TMPDIR: both runs also race to build the initdb cache and sweep the same base.
    fresh_tmp = Path(tempfile.mkdtemp(prefix="pgb-conc-", dir="/tmp"))
    cleanup["paths"].append(fresh_tmp)
    fresh_tmp.chmod(0o755)
    env: dict[str, str | None] = {"TMPDIR": str(fresh_tmp)}
    first = Inner(pytester, name="first", env=env)
    second = Inner(pytester, name="second", env=env)
    cleanup["procs"] += [first, second]
    results = [first.result(timeout=60), second.result(timeout=60)]
    reports = first.reports()
    runs = _track(cleanup, *reports)
    for inner, result in zip((first, second), results, strict=True):
        assert result.ret == 0, inner.output()
        result.assert_outcomes(passed=1)
    assert len(reports) == 2 and len(runs) == 2, reports
    assert runs[0] != runs[1]
    assert all(run.parent == fresh_tmp for run in runs), runs
    for run in runs:
        assert_swept(run)


def test_concurrent_sweep_spares_a_live_runs_password_file(project, pg_server, cleanup) -> None:
    with pg_server.connect() as admin:
        admin.execute("CREATE ROLE pgb_reliability LOGIN SUPERUSER PASSWORD 'Tr0mb0ne-S3cret'")
    cleanup["roles"] = [pg_server]
    params = conninfo.conninfo_to_dict(pg_server.dsn)
    params.update(user="pgb_reliability", password="Tr0mb0ne-S3cret")
    dsn = conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})
    pytester = project(
        "",
        test_long_py="""
        import os, pathlib, time

        HERE = pathlib.Path(__file__).parent

        def test_long_external_session(pg_db):
            passfile = pathlib.Path(os.environ["PGPASSFILE"])
            (HERE / "passfile").write_text(str(passfile))
            deadline = time.monotonic() + 30
            while not (HERE / "go").exists():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert passfile.is_file(), f"{passfile} was deleted under a live run"
            with pg_db.connect() as conn:
                conn.execute("SELECT 1")
        """,
        test_local_py="def test_local(pg_conn):\n    pg_conn.execute('SELECT 1')\n",
    )
    external = Inner(
        pytester,
        "test_long.py",
        "--pgbudget-backend=external",
        f"--pgbudget-dsn={dsn}",
        name="external",
    )
    cleanup["procs"].append(external)
    report = pytester.path / "passfile"
    assert wait_until(lambda: report.exists() or external.popen.poll() is not None, 30)
    assert report.exists(), external.output()
    passdir = Path(report.read_text()).parent
    assert passdir.name.startswith("pgbpass-")
    cleanup["paths"].append(passdir)
    # The external session has been running for two minutes.
    old = time.time() - 120
    os.utime(passdir, (old, old))

    # Meanwhile another run on this machine starts a local cluster (and sweeps).
    local = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "test_local.py", f"--pgbudget-backend={BACKEND}", timeout=60
    )
    local.assert_outcomes(passed=1)
    (pytester.path / "go").write_text("")
    result = external.result(timeout=60)
    assert result.ret == 0, external.output()


# -- 7. long paths -------------------------------------------------------------------------


def test_long_basetemp_and_tmpdir(project, cleanup) -> None:
    # World-traversable so that only the length is tested, not reachability.
    long_tmp = Path(tempfile.mkdtemp(prefix="pgb-longtmp-", dir="/tmp"))
    cleanup["paths"].append(long_tmp)
    long_tmp.chmod(0o755)
    tmpdir = long_tmp / ("t" * 150)
    tmpdir.mkdir(mode=0o755)
    pytester = project(
        INI,
        conftest_py=REPORTER,
        test_long_py=f"""
        import os, tempfile

        def test_paths(pg_conn, report, tmp_path):
            assert len(str(tmp_path)) > 200
            assert tempfile.gettempdir() == {str(tmpdir)!r}
            assert len(report["host"] + "/.s.PGSQL.5432") <= {SOCKET_PATH_MAX}
            assert pg_conn.execute("SELECT 1").fetchone()[0] == 1
        """,
    )
    basetemp = pytester.path / ("b" * 200)
    assert len(str(basetemp)) > 200 and len(str(tmpdir)) + len("/.s.PGSQL.5432") > SOCKET_PATH_MAX
    inner = Inner(pytester, basetemp=basetemp, env={"TMPDIR": str(tmpdir)})
    cleanup["procs"].append(inner)
    result = inner.result(timeout=60)
    runs = _track(cleanup, *inner.reports())
    assert result.ret == 0, inner.output()
    result.assert_outcomes(passed=1)
    for run in runs:
        assert_swept(run)


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as another account only under root")
def test_tmpdir_the_server_account_cannot_reach(project, cleanup) -> None:
    private = Path(tempfile.mkdtemp(prefix="pgb-private-", dir="/tmp"))  # mode 0700, root's
    cleanup["paths"].append(private)
    tmpdir = private / "tmp"
    tmpdir.mkdir(mode=0o755)
    pytester = project(
        INI,
        conftest_py=REPORTER,
        test_p_py="def test_a(pg_conn, report):\n    pg_conn.execute('SELECT 1')\n",
    )
    inner = Inner(pytester, env={"TMPDIR": str(tmpdir)})
    cleanup["procs"].append(inner)
    result = inner.result(timeout=60)
    for run in _track(cleanup, *inner.reports()):
        assert_swept(run)
    assert result.ret == 0, inner.output()


# -- 8. locale independence ------------------------------------------------------------------


LOCALES = {
    "unset": {
        "LANG": None,
        "LC_ALL": None,
        "LC_CTYPE": None,
        "LC_MESSAGES": None,
        "LANGUAGE": None,
    },
    "turkish": {"LANG": "tr_TR.UTF-8", "LC_ALL": None},
    "bogus": {"LANG": "tr_TR.UTF-8", "LC_ALL": "xx_YY.bogus"},
}


def test_locale_independence(project, cleanup) -> None:
    pytester = project(
        INI + "pgbudget_schema = schema.sql\n",
        conftest_py=REPORTER,
        schema_sql="CREATE TABLE ITEMS (ID int PRIMARY KEY, TITLE text);\n"
        "INSERT INTO ITEMS VALUES (1, 'I\u0131\u0130i');\n",  # Turkish dotless and dotted i
        test_loc_py="""
        import psycopg, pytest

        def test_query(pg_conn, report):
            assert pg_conn.execute("SELECT title FROM items WHERE id = 1").fetchone()[0] == "I\\u0131\\u0130i"
            assert pg_conn.execute("SELECT upper('title')").fetchone()[0] == "TITLE"
            assert pg_conn.execute("SHOW server_encoding").fetchone()[0] == "UTF8"

        def test_errors_still_classified(pg_conn):
            with pytest.raises(psycopg.errors.UndefinedTable):
                pg_conn.execute("SELECT * FROM nowhere")
        """,
    )
    inners = {name: Inner(pytester, name=name, env=env) for name, env in LOCALES.items()}
    cleanup["procs"] += list(inners.values())
    results = {name: inner.result(timeout=60) for name, inner in inners.items()}
    runs = _track(cleanup, *inners["unset"].reports())
    for name, result in results.items():
        assert result.ret == 0, f"{name}:\n{inners[name].output()}"
        result.assert_outcomes(passed=2)
    assert len(runs) == 3
    for run in runs:
        assert_swept(run)


# -- 9. a schema that fails halfway ------------------------------------------------------------


def _pgbudget_databases(pg_server) -> set[str]:
    with pg_server.connect() as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'pgbudget%'")
        return {name for (name,) in rows.fetchall()}


HALFWAY = {
    "transactional": (
        {
            "sql/002_half.sql": "CREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\nSELECT 1 / 0;\n"
        },
        "division by zero",
    ),
    "non-transactional": (
        {"sql/002_half.sql": "CREATE TABLE b (id int);\nCREATE INDEX CONCURRENTLY ON b (nope);\n"},
        'column "nope" does not exist',
    ),
}


@pytest.mark.parametrize("kind", list(HALFWAY))
def test_half_built_template_does_not_survive(project, pg_server, kind: str) -> None:
    files, message = HALFWAY[kind]
    before = _pgbudget_databases(pg_server)
    pytester = project(
        "pgbudget_schema = sql\n",
        **{
            "sql/001_ok.sql": "CREATE TABLE a (id int);\nINSERT INTO a SELECT generate_series(1, 100);\n",
            **files,
            "sql/003_never.sql": "CREATE TABLE c (id int);\n",
            "test_x.py": "def test_a(pg_conn): pass\ndef test_b(pg_conn): pass\n"
            "def test_c(pg_db): pass\n",
        },
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--pgbudget-backend=external",
        f"--pgbudget-dsn={pg_server.dsn}",
        timeout=60,
    )
    out = result.stdout.str()
    assert result.ret == 3, out
    assert out.count(message) == 1, out  # the run stopped once
    assert "passed" not in result.parseoutcomes()
    left = _pgbudget_databases(pg_server) - before
    assert not left, f"the inner run left databases on the server: {left}"


def test_ctrl_c_during_template_build_leaves_no_template(project, pg_server, cleanup) -> None:
    before = _pgbudget_databases(pg_server)
    pytester = project(
        "pgbudget_schema =\n    sql\n    slowschema:create\n",
        **{
            "sql/001_ok.sql": "CREATE TABLE a (id int);\n",
            "slowschema.py": """
            import pathlib

            def create(conn):
                conn.execute("CREATE TABLE b (id int)")
                (pathlib.Path(__file__).parent / "loading").write_text("")
                conn.execute("SELECT pg_sleep(60)")
            """,
            "conftest.py": "import os, sys\nsys.path.insert(0, os.path.dirname(__file__))\n",
            "test_x.py": "def test_a(pg_conn): pass\n",
        },
    )
    inner = Inner(
        pytester, "--pgbudget-backend=external", f"--pgbudget-dsn={pg_server.dsn}", new_session=True
    )
    cleanup["procs"].append(inner)
    marker = pytester.path / "loading"
    assert wait_until(lambda: marker.exists() or inner.popen.poll() is not None, 30)
    assert marker.exists(), inner.output()
    assert _pgbudget_databases(pg_server) - before, "no template while loading?"

    os.killpg(os.getpgid(inner.pid), signal.SIGINT)
    result = inner.result(timeout=30)

    assert result.ret == pytest.ExitCode.INTERRUPTED, inner.output()
    left = _pgbudget_databases(pg_server) - before
    assert not left, f"the interrupted run left databases on the server: {left}"
