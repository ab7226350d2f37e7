"""Server helpers that need no server: URIs, redaction, settings layers, passfiles,
binary discovery and run-directory ownership."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from pytest_pgbudget.errors import ServerError
from pytest_pgbudget.options import Settings
from pytest_pgbudget.server.account import Account
from pytest_pgbudget.server.binaries import Binaries, candidate_bindirs, find_local
from pytest_pgbudget.server.profile import profile_layers
from pytest_pgbudget.server.provision import layered_settings, private_passfile, redact, to_uri
from pytest_pgbudget.server.rundir import (
    SOCKET_PATH_LIMIT,
    RunDir,
    _process_start,
    is_postmaster_of,
    temp_base,
)

#: The module, not the ``provision`` function that ``pytest_pgbudget.server`` re-exports.
provision_module = import_module("pytest_pgbudget.server.provision")

linux_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")


def dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- to_uri ---------------------------------------------------------------------------------


def test_to_uri_unix_socket_goes_in_the_host_parameter() -> None:
    uri = to_uri(
        {"host": "/tmp/pgbudget-run-abc", "port": "5432", "user": "postgres", "dbname": "db1"}
    )
    assert uri == "postgresql://postgres@/db1?host=/tmp/pgbudget-run-abc&port=5432"


def test_to_uri_tcp_host_and_port_go_in_the_netloc() -> None:
    uri = to_uri({"host": "db.example.com", "port": 5433, "user": "app", "dbname": "shop"})
    assert uri == "postgresql://app@db.example.com:5433/shop"


def test_to_uri_without_user_or_port() -> None:
    assert to_uri({"host": "localhost", "dbname": "d"}) == "postgresql://localhost/d"
    assert to_uri({}) == "postgresql:///"


def test_to_uri_quotes_special_characters() -> None:
    uri = to_uri({"host": "h", "user": "us@r:x/y", "dbname": "d b%/?#"})
    assert uri == "postgresql://us%40r%3Ax%2Fy@h/d%20b%25%2F%3F%23"


def test_to_uri_extra_params_and_none_values() -> None:
    uri = to_uri(
        {
            "host": "h",
            "port": "5432",
            "dbname": "d",
            "sslmode": "disable",
            "connect_timeout": 10,
            "passfile": None,
        }
    )
    assert uri == "postgresql://h:5432/d?sslmode=disable&connect_timeout=10"


ROUND_TRIPS = {
    "unix socket": {
        "host": "/tmp/pgbudget-run-x1",
        "port": "5432",
        "user": "postgres",
        "dbname": "postgres",
    },
    "tcp": {"host": "127.0.0.1", "port": "55432", "user": "app", "dbname": "shop"},
    "special characters": {
        "host": "localhost",
        "port": "5432",
        "user": "us@r:x/y?#&=%",
        "dbname": "d b%/?#&=",
        "password": "p@ss:w/rd&=",
    },
    "extra params": {
        "host": "/var/run/postgresql",
        "dbname": "d",
        "sslmode": "prefer",
        "application_name": "pytest-pgbudget",
        "target_session_attrs": "any",
    },
}


@pytest.mark.parametrize("params", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_to_uri_round_trips_through_libpq(params: dict[str, str]) -> None:
    assert conninfo_to_dict(to_uri(params)) == params


@pytest.mark.parametrize(
    "params",
    [
        {"host": "h", "dbname": "d", "options": "-c work_mem=8MB"},
        {"host": "/tmp/dir with space", "dbname": "d"},
    ],
    ids=["options", "socket-dir"],
)
def test_to_uri_round_trips_spaces_in_query_params(params: dict[str, str]) -> None:
    assert conninfo_to_dict(to_uri(params)) == params


def test_to_uri_round_trips_an_ipv6_host() -> None:
    params = {"host": "::1", "port": "5432", "user": "u", "dbname": "d"}
    assert conninfo_to_dict(to_uri(params)) == params


def test_to_uri_round_trips_multiple_hosts() -> None:
    params = {"host": "h1,h2", "port": "5432,5433", "dbname": "d"}
    assert conninfo_to_dict(to_uri(params)) == params


# --- redact -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        "host=db user=app password=s3cr3t dbname=shop",
        "postgresql://app:s3cr3t@db/shop",
        "postgresql://app@db/shop?password=s3cr3t",
    ],
    ids=["key-value", "uri", "uri-query"],
)
def test_redact_hides_the_password(dsn: str) -> None:
    redacted = redact(dsn)
    assert "s3cr3t" not in redacted
    params = conninfo_to_dict(redacted)
    assert params == {"host": "db", "user": "app", "password": "***", "dbname": "shop"}


def test_redact_leaves_a_dsn_without_password_intact() -> None:
    redacted = redact("postgresql://app@db:5433/shop?sslmode=disable")
    assert "***" not in redacted
    assert conninfo_to_dict(redacted) == {
        "host": "db",
        "port": "5433",
        "user": "app",
        "dbname": "shop",
        "sslmode": "disable",
    }


def test_redact_of_an_unparsable_dsn_shows_nothing_of_it() -> None:
    assert redact("password=s3cr3t oops") == "<unparsable DSN>"


# --- layered_settings ---------------------------------------------------------------------


@pytest.fixture
def fake_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three profile layers that all set ``x``, so the winner shows the order."""
    layers = [
        ("seed", {"x": "seed", "only_seed": "1"}),
        ("test", {"x": "test", "only_test": "1"}),
        ("capture", {"x": "capture"}),
    ]
    monkeypatch.setattr(provision_module, "profile_layers", lambda: layers)


def test_layered_settings_profile_order(fake_layers: None) -> None:
    merged, origin = layered_settings(Settings())
    # A subset: settings derived from other options (e.g. deadlock_timeout) may be added.
    assert merged.items() >= {"x": "capture", "only_seed": "1", "only_test": "1"}.items()
    assert origin == "seed + test + capture"


def test_layered_settings_user_over_profile_hook_over_user(fake_layers: None) -> None:
    seen: dict[str, str] = {}

    def hook(settings: dict[str, str]) -> None:
        seen.update(settings)
        settings["x"] = "hook"
        settings["added_by_hook"] = "on"

    user = Settings(settings=("x = 'user'", "only_user = 2"))
    merged, origin = layered_settings(user, hook)
    assert seen["x"] == "user"  # the hook sees the user's layer already applied
    assert (
        merged.items()
        >= {
            "x": "hook",
            "only_seed": "1",
            "only_test": "1",
            "only_user": "2",
            "added_by_hook": "on",
        }.items()
    )
    assert (
        origin
        == "seed + test + capture + pgbudget_settings (2) + pytest_pgbudget_server_settings hook"
    )


def test_layered_settings_user_layer_without_hook(fake_layers: None) -> None:
    merged, origin = layered_settings(Settings(settings=("x = user",)))
    assert merged["x"] == "user"
    assert origin == "seed + test + capture + pgbudget_settings (1)"


def test_layered_settings_hook_that_changes_nothing_is_not_named(fake_layers: None) -> None:
    calls = []
    merged, origin = layered_settings(Settings(), lambda settings: calls.append(dict(settings)))
    assert calls == [merged]
    assert origin == "seed + test + capture"


def test_layered_settings_hook_removing_a_setting_is_named(fake_layers: None) -> None:
    def hook(settings: dict[str, str]) -> None:
        del settings["only_seed"]

    merged, origin = layered_settings(Settings(), hook)
    assert "only_seed" not in merged
    assert origin.endswith("+ pytest_pgbudget_server_settings hook")


def test_layered_settings_real_profile() -> None:
    merged, origin = layered_settings(Settings())
    assert origin == " + ".join(name for name, _ in profile_layers())
    expected: dict[str, str] = {}
    for _name, layer in profile_layers():
        expected.update(layer)
    assert merged.keys() >= expected.keys()
    assert merged["work_mem"] == expected["work_mem"]  # seed layer
    assert merged["fsync"] == "off"  # test layer
    assert merged["shared_preload_libraries"] == "pg_stat_statements,auto_explain"  # capture


# --- private_passfile ---------------------------------------------------------------------


@pytest.fixture
def passfile_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """PGPASSFILE unset during the test; the private directories removed after it."""
    monkeypatch.delenv("PGPASSFILE", raising=False)
    made: list[Path] = []
    yield made
    current = os.environ.get("PGPASSFILE")
    if current:
        made.append(Path(current).parent)
    for directory in made:
        if directory.name.startswith("pgbpass-"):
            shutil.rmtree(directory, ignore_errors=True)


def test_private_passfile_writes_a_private_file(passfile_env: list[Path]) -> None:
    params: dict[str, Any] = {
        "host": "db.example.com",
        "port": 5432,
        "user": "app",
        "password": "s3cr3t",
        "dbname": "shop",
    }
    result = private_passfile(params)
    assert result == {"host": "db.example.com", "port": 5432, "user": "app", "dbname": "shop"}
    passfile = Path(os.environ["PGPASSFILE"])
    assert passfile.parent.name.startswith("pgbpass-")
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    assert stat.S_IMODE(passfile.parent.stat().st_mode) == 0o700
    # The database is a wildcard: the plugin connects to databases it creates.
    assert passfile.read_text() == "db.example.com:5432:*:app:s3cr3t\n"


def test_private_passfile_escapes_colons_and_backslashes(passfile_env: list[Path]) -> None:
    params: dict[str, Any] = {"host": "h:1", "user": "do\\main", "password": "p:a\\ss"}
    result = private_passfile(params)
    assert "password" not in result
    line = Path(os.environ["PGPASSFILE"]).read_text()
    assert line == "h\\:1:*:*:do\\\\main:p\\:a\\\\ss\n"


def test_private_passfile_wildcards_missing_fields(passfile_env: list[Path]) -> None:
    private_passfile({"password": "pw", "dbname": "d"})
    assert Path(os.environ["PGPASSFILE"]).read_text() == "*:*:*:*:pw\n"


def test_private_passfile_keeps_an_existing_passfile(
    passfile_env: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tmp_path / "pgpass"
    existing.write_text("other:5432:*:bob:bobpw\n")
    monkeypatch.setenv("PGPASSFILE", str(existing))
    private_passfile({"host": "h", "user": "u", "password": "pw"})
    passfile = Path(os.environ["PGPASSFILE"])
    assert passfile != existing
    lines = passfile.read_text().splitlines()
    assert lines[0] == "h:*:*:u:pw"  # ours first: libpq uses the first match
    assert "other:5432:*:bob:bobpw" in lines


def test_private_passfile_without_password_changes_nothing(passfile_env: list[Path]) -> None:
    params: dict[str, Any] = {"host": "h", "user": "u", "password": ""}
    assert private_passfile(params) == {"host": "h", "user": "u"}
    assert "PGPASSFILE" not in os.environ
    assert private_passfile({"host": "h"}) == {"host": "h"}
    assert "PGPASSFILE" not in os.environ


# --- binaries -----------------------------------------------------------------------------


def test_candidate_bindirs_explicit_dir_is_the_only_candidate(tmp_path: Path) -> None:
    assert candidate_bindirs(str(tmp_path)) == [(tmp_path, "pgbudget_pg_bin")]
    home = candidate_bindirs("~/pg/bin")
    assert home == [(Path.home() / "pg" / "bin", "pgbudget_pg_bin")]


def test_find_local_explicit_non_bindir_raises(tmp_path: Path) -> None:
    (tmp_path / "initdb").write_text("")  # postgres is missing
    with pytest.raises(ServerError) as info:
        find_local(str(tmp_path))
    message = str(info.value)
    assert f"pgbudget_pg_bin={str(tmp_path)!r}" in message
    assert "holds no initdb and postgres" in message
    assert "e.g. /usr/lib/postgresql/" in message


def test_find_local_explicit_missing_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="holds no initdb and postgres"):
        find_local(str(tmp_path / "nope"))


def test_find_local_explicit_bindir_is_used(tmp_path: Path) -> None:
    for tool in ("initdb", "postgres"):
        (tmp_path / tool).write_text("")
    assert find_local(str(tmp_path)) == Binaries(tmp_path, "pgbudget_pg_bin")


# --- run directories ----------------------------------------------------------------------


def test_is_postmaster_of_rejects_this_pytest_process() -> None:
    # Even with the right working directory, a python process is no postmaster.
    assert not is_postmaster_of(os.getpid(), Path.cwd())
    assert not is_postmaster_of(os.getpid(), Path("/nonexistent"))


def test_is_postmaster_of_rejects_a_dead_pid(tmp_path: Path) -> None:
    assert not is_postmaster_of(dead_pid(), tmp_path)


def write_owner(path: Path, **owner: Any) -> RunDir:
    (path / "owner.json").write_text(json.dumps(owner))
    return RunDir(path)


@linux_proc
def test_owner_alive_for_this_process(tmp_path: Path) -> None:
    start = _process_start(os.getpid())
    assert start is not None and start.isdigit()
    assert write_owner(tmp_path, pid=os.getpid(), start=start, time=time.time()).owner_alive()


def test_owner_alive_without_start_time_trusts_the_pid(tmp_path: Path) -> None:
    assert write_owner(tmp_path, pid=os.getpid(), start=None).owner_alive()


def test_owner_dead_pid(tmp_path: Path) -> None:
    assert not write_owner(tmp_path, pid=dead_pid(), start="1").owner_alive()


def test_owner_without_pid_is_dead(tmp_path: Path) -> None:
    assert not write_owner(tmp_path, start="1").owner_alive()


@linux_proc
def test_owner_reused_pid_with_another_start_time_is_dead(tmp_path: Path) -> None:
    start = _process_start(os.getpid())
    assert start is not None
    other = str(int(start) + 1)
    assert not write_owner(tmp_path, pid=os.getpid(), start=other).owner_alive()


def test_half_made_run_dir_is_judged_by_age(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert RunDir(fresh).owner_alive()  # being created right now: spared
    old = tmp_path / "old"
    old.mkdir()
    (old / "owner.json").write_text("{not json")
    hours_ago = time.time() - 7200
    os.utime(old, (hours_ago, hours_ago))
    assert not RunDir(old).owner_alive()
    assert not RunDir(tmp_path / "gone").owner_alive()


# --- temp_base ----------------------------------------------------------------------------


def current_account() -> Account:
    return Account("me", os.geteuid(), os.getegid())


def test_temp_base_prefers_the_temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert temp_base(current_account()) == tmp_path


def test_temp_base_falls_back_when_the_socket_path_would_be_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    room = SOCKET_PATH_LIMIT - len(str(tmp_path)) + 1
    assert temp_base(current_account(), room=room) == Path("/tmp")
    assert temp_base(current_account(), room=room - 1) == tmp_path


def test_temp_base_falls_back_when_the_temp_dir_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    assert temp_base(current_account()) == Path("/tmp")


def test_temp_base_falls_back_when_the_server_account_cannot_reach_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    other_uid = 65534 if os.geteuid() != 65534 else 65533
    assert temp_base(Account("other", other_uid, other_uid)) == Path("/tmp")
