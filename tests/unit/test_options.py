"""The option table: sources, precedence, parsing and usage errors.

Every configuration is built in-process with ``pytester.parseconfigure``, which
runs the plugin's ``pytest_configure`` (where the options are validated).
"""

from __future__ import annotations

import dataclasses
import re
import textwrap

import pytest

from pytest_pgbudget.options import (
    BACKENDS,
    ISOLATIONS,
    OPTIONS,
    OPTIONS_BY_NAME,
    Settings,
    load_settings,
    parse_setting_lines,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PGBUDGET_* variable of the outer environment leaks into a test."""
    for option in OPTIONS:
        monkeypatch.delenv(option.env, raising=False)


def configure(pytester: pytest.Pytester, ini: str = "", *args: str) -> Settings:
    pytester.makeini("[pytest]\n" + textwrap.dedent(ini))
    return load_settings(pytester.parseconfigure(*args))


def usage_error(pytester: pytest.Pytester, ini: str = "", *args: str) -> str:
    pytester.makeini("[pytest]\n" + textwrap.dedent(ini))
    with pytest.raises(pytest.UsageError) as info:
        pytester.parseconfigure(*args)
    return str(info.value)


# --- the table itself -------------------------------------------------------------------


def test_every_option_follows_the_naming_scheme() -> None:
    assert len({option.name for option in OPTIONS}) == len(OPTIONS)
    for option in OPTIONS:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", option.name), option.name
        assert option.ini == f"pgbudget_{option.name}"
        assert option.dest == f"pgbudget_{option.name}"
        assert option.flag == "--pgbudget-" + option.name.replace("_", "-")
        assert re.fullmatch(r"--pgbudget-[a-z]+(-[a-z]+)*", option.flag)
        assert option.env == "PGBUDGET_" + option.name.upper()
        assert re.fullmatch(r"PGBUDGET_[A-Z]+(_[A-Z]+)*", option.env)
        assert OPTIONS_BY_NAME[option.name] is option
        # Multi-line values are ini-only: a flag cannot hold lines.
        assert option.cli == (option.ini_type != "linelist"), option.name


def test_every_option_is_a_settings_field_with_the_same_default() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert {option.name for option in OPTIONS} == fields - {"rootdir", "sources"}
    defaults = Settings()
    for option in OPTIONS:
        assert getattr(defaults, option.name) == option.parse(option.ini, option.default)


def test_help_lists_every_flag_ini_key_and_env_var(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert result.ret == 0
    out = result.stdout.str()
    assert "PostgreSQL performance budgets" in out  # the option group
    for option in OPTIONS:
        assert option.ini in out, option.ini
        if option.cli:
            assert re.search(rf"^\s+{re.escape(option.flag)}[ =]", out, re.M), option.flag
            assert option.env in out, option.env
        else:
            assert option.flag not in out


# --- sources and precedence -------------------------------------------------------------


def test_defaults_when_nothing_is_set(pytester: pytest.Pytester) -> None:
    settings = configure(pytester)
    assert settings.backend == "auto"
    assert settings.isolation == "database"
    assert settings.capture is True
    assert settings.start_timeout == 60.0
    assert settings.image == "postgres:18"
    assert settings.pg_bin == settings.dsn == ""
    assert settings.schema == settings.settings == settings.default_budget == ()
    assert settings.rootdir == pytester.path
    assert dict(settings.sources) == {option.name: "default" for option in OPTIONS}


def test_env_vars_are_read(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGBUDGET_BACKEND", " Local ")
    monkeypatch.setenv("PGBUDGET_START_TIMEOUT", "12.5")
    monkeypatch.setenv("PGBUDGET_CAPTURE", "off")
    monkeypatch.setenv("PGBUDGET_SETTINGS", "work_mem = 8MB\n\n  jit = on  \n")
    settings = configure(pytester)
    assert settings.backend == "local"  # stripped and lower-cased
    assert settings.start_timeout == 12.5
    assert settings.capture is False
    assert settings.settings == ("work_mem = 8MB", "jit = on")
    assert settings.server_settings == {"work_mem": "8MB", "jit": "on"}
    assert settings.sources["backend"] == "PGBUDGET_BACKEND"
    assert settings.sources["start_timeout"] == "PGBUDGET_START_TIMEOUT"
    assert settings.sources["capture"] == "PGBUDGET_CAPTURE"
    assert settings.sources["settings"] == "PGBUDGET_SETTINGS"
    assert settings.sources["isolation"] == "default"


def test_ini_overrides_env(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGBUDGET_ISOLATION", "database")
    monkeypatch.setenv("PGBUDGET_IMAGE", "postgres:15")
    monkeypatch.setenv("PGBUDGET_SCHEMA", "from_env.sql")
    monkeypatch.setenv("PGBUDGET_DSN", "host=from-env")
    settings = configure(
        pytester,
        """
        pgbudget_isolation = transaction
        pgbudget_image = postgres:17-alpine
        pgbudget_schema =
            sql/a.sql
            pkg.mod:load
        """,
    )
    assert settings.isolation == "transaction"
    assert settings.image == "postgres:17-alpine"
    assert settings.schema == ("sql/a.sql", "pkg.mod:load")
    assert settings.dsn == "host=from-env"  # not in the ini: the env var still applies
    assert settings.sources["isolation"] == "pgbudget_isolation"
    assert settings.sources["image"] == "pgbudget_image"
    assert settings.sources["schema"] == "pgbudget_schema"
    assert settings.sources["dsn"] == "PGBUDGET_DSN"


def test_cli_overrides_ini_and_env(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGBUDGET_START_TIMEOUT", "5")
    monkeypatch.setenv("PGBUDGET_PG_BIN", "/env/bin")
    settings = configure(
        pytester,
        """
        pgbudget_start_timeout = 10
        pgbudget_pg_bin = /ini/bin
        pgbudget_capture = off
        """,
        "--pgbudget-start-timeout=20",
        "--pgbudget-pg-bin",
        "/cli/bin",
    )
    assert settings.start_timeout == 20.0
    assert settings.pg_bin == "/cli/bin"
    assert settings.capture is False  # no flag given: the ini value stands
    assert settings.sources["start_timeout"] == "--pgbudget-start-timeout"
    assert settings.sources["pg_bin"] == "--pgbudget-pg-bin"
    assert settings.sources["capture"] == "pgbudget_capture"


def test_override_ini_counts_as_ini_and_loses_to_the_flag(pytester: pytest.Pytester) -> None:
    settings = configure(
        pytester,
        "pgbudget_isolation = database\n",
        "-o",
        "pgbudget_isolation=transaction",
        "-o",
        "pgbudget_backend=embedded",
        "--pgbudget-backend=local",
    )
    assert settings.isolation == "transaction"
    assert settings.sources["isolation"] == "pgbudget_isolation"
    assert settings.backend == "local"
    assert settings.sources["backend"] == "--pgbudget-backend"


def test_zero_counts_as_set(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGBUDGET_CAPTURE", "on")
    monkeypatch.setenv("PGBUDGET_START_TIMEOUT", "30")
    settings = configure(pytester, "pgbudget_capture = 0\n", "--pgbudget-start-timeout=0")
    assert settings.capture is False
    assert settings.sources["capture"] == "pgbudget_capture"
    assert settings.start_timeout == 0.0
    assert settings.sources["start_timeout"] == "--pgbudget-start-timeout"


def test_empty_ini_string_counts_as_set(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 'pgbudget_pg_bin =' is present but empty: it wins over the env var and
    # means "search the usual places", as the default does.
    monkeypatch.setenv("PGBUDGET_PG_BIN", "/env/bin")
    monkeypatch.setenv("PGBUDGET_DSN", "host=from-env")
    settings = configure(pytester, "pgbudget_pg_bin =\npgbudget_dsn =\n")
    assert settings.pg_bin == ""
    assert settings.dsn == ""
    assert settings.sources["pg_bin"] == "pgbudget_pg_bin"
    assert settings.sources["dsn"] == "pgbudget_dsn"


def test_empty_env_var_counts_as_set(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGBUDGET_IMAGE", "")
    settings = configure(pytester)
    assert settings.image == ""
    assert settings.sources["image"] == "PGBUDGET_IMAGE"


def test_empty_cli_flag_counts_as_set(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGBUDGET_PG_BIN", "/env/bin")
    settings = configure(pytester, "pgbudget_pg_bin = /ini/bin\n", "--pgbudget-pg-bin=")
    assert settings.pg_bin == ""
    assert settings.sources["pg_bin"] == "--pgbudget-pg-bin"


def test_empty_ini_linelist_counts_as_set(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGBUDGET_SETTINGS", "work_mem = 1MB")
    monkeypatch.setenv("PGBUDGET_SCHEMA", "from_env.sql")
    settings = configure(pytester, "pgbudget_settings =\npgbudget_schema =\n")
    assert settings.settings == ()
    assert settings.schema == ()
    assert settings.sources["settings"] == "pgbudget_settings"
    assert settings.sources["schema"] == "pgbudget_schema"


def test_ini_linelists_keep_one_item_per_line(pytester: pytest.Pytester) -> None:
    settings = configure(
        pytester,
        """
        pgbudget_settings =
            work_mem = 16MB
            search_path = 'app, public'
        pgbudget_default_budget =
            max_queries = 20
            no_seq_scan = True
        """,
    )
    assert settings.server_settings == {"work_mem": "16MB", "search_path": "app, public"}
    assert settings.default_budget == ("max_queries = 20", "no_seq_scan = True")
    assert settings.sources["default_budget"] == "pgbudget_default_budget"


def test_settings_replace_keeps_other_fields() -> None:
    original = Settings(backend="local", sources={"backend": "PGBUDGET_BACKEND"})
    changed = original.replace(isolation="transaction")
    assert changed.isolation == "transaction"
    assert changed.backend == "local"
    assert changed.sources == {"backend": "PGBUDGET_BACKEND"}
    assert original.isolation == "database"


# --- usage errors -------------------------------------------------------------------------


def test_bad_backend_names_the_flag_and_the_choices(pytester: pytest.Pytester) -> None:
    message = usage_error(pytester, "", "--pgbudget-backend=docker")
    assert "--pgbudget-backend" in message
    assert ", ".join(BACKENDS) in message
    assert "'docker'" in message


def test_bad_isolation_names_the_ini_key_and_the_choices(pytester: pytest.Pytester) -> None:
    message = usage_error(pytester, "pgbudget_isolation = schema\n")
    assert "pgbudget_isolation" in message
    assert ", ".join(ISOLATIONS) in message
    assert "'schema'" in message


def test_bad_start_timeout_names_the_env_var_and_an_example(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGBUDGET_START_TIMEOUT", "soon")
    message = usage_error(pytester)
    assert "PGBUDGET_START_TIMEOUT" in message
    assert "must be a number, e.g. 30" in message
    assert "'soon'" in message


def test_bad_capture_value(pytester: pytest.Pytester) -> None:
    message = usage_error(pytester, "pgbudget_capture = maybe\n")
    assert "pgbudget_capture" in message
    assert "must be on or off" in message
    assert "'maybe'" in message


def test_empty_env_var_with_choices_is_an_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Present but empty counts as set, so it is validated rather than ignored.
    monkeypatch.setenv("PGBUDGET_BACKEND", "")
    message = usage_error(pytester)
    assert "PGBUDGET_BACKEND" in message
    assert "auto" in message


@pytest.mark.parametrize("line", ["work_mem 8MB", "= 8MB", "work mem = 8MB", "work-mem = 8MB"])
def test_bad_settings_line(pytester: pytest.Pytester, line: str) -> None:
    message = usage_error(pytester, f"pgbudget_settings =\n    {line}\n")
    assert "pgbudget_settings" in message
    assert "e.g. 'work_mem = 8MB'" in message
    assert repr(line) in message


def test_bad_default_budget_keyword(pytester: pytest.Pytester) -> None:
    message = usage_error(pytester, "pgbudget_default_budget =\n    max_querys = 3\n")
    assert "pgbudget_default_budget" in message
    assert "'max_querys'" in message
    assert "max_queries" in message  # the valid keywords are listed


def test_bad_default_budget_literal(pytester: pytest.Pytester) -> None:
    message = usage_error(pytester, "pgbudget_default_budget =\n    max_ms = fast\n")
    assert "pgbudget_default_budget" in message
    assert "max_ms" in message and "'fast'" in message
    assert "e.g. 10, True" in message


def test_default_budget_line_without_equals(pytester: pytest.Pytester) -> None:
    message = usage_error(pytester, "pgbudget_default_budget =\n    max_queries 3\n")
    assert "pgbudget_default_budget" in message
    assert "e.g. 'max_queries = 20'" in message


def test_default_budget_wrong_type(pytester: pytest.Pytester) -> None:
    message = usage_error(pytester, "pgbudget_default_budget =\n    max_queries = 2.5\n")
    assert "max_queries must be an integer, e.g. max_queries=10" in message


def test_external_backend_without_dsn(pytester: pytest.Pytester) -> None:
    message = usage_error(pytester, "pgbudget_backend = external\n")
    assert "external backend needs a server" in message
    for where in ("pgbudget_dsn", "--pgbudget-dsn", "PGBUDGET_DSN"):
        assert where in message
    assert "postgresql://" in message


def test_external_backend_with_dsn_from_env(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Validation only: configuring does not connect.
    monkeypatch.setenv("PGBUDGET_DSN", "postgresql://u@db.invalid:5432/postgres")
    settings = configure(pytester, "", "--pgbudget-backend", "external")
    assert settings.backend == "external"
    assert settings.dsn == "postgresql://u@db.invalid:5432/postgres"
    assert settings.sources["dsn"] == "PGBUDGET_DSN"


# --- parse_setting_lines ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "name", "value"),
    [
        ("work_mem = 8MB", "work_mem", "8MB"),
        ("work_mem=8MB", "work_mem", "8MB"),
        ("work_mem = '8MB'", "work_mem", "8MB"),
        ("search_path = '\"$user\", public'", "search_path", '"$user", public'),
        ('application_name = "x"', "application_name", '"x"'),  # only single quotes go
        ("log_line_prefix = ''", "log_line_prefix", ""),
        ("log_line_prefix = '", "log_line_prefix", "'"),  # a lone quote stays
        ("log_line_prefix = '%m [%p] '", "log_line_prefix", "%m [%p] "),  # inner space kept
        ("auto_explain.log_min_duration = 0", "auto_explain.log_min_duration", "0"),
        ("options = -c a=b", "options", "-c a=b"),  # split at the first '='
        ("temp_tablespaces =", "temp_tablespaces", ""),
    ],
)
def test_parse_setting_lines(line: str, name: str, value: str) -> None:
    assert parse_setting_lines([line], "origin") == {name: value}


def test_parse_setting_lines_later_lines_win() -> None:
    assert parse_setting_lines(["work_mem = 1MB", "jit = on", "work_mem = 2MB"], "x") == {
        "work_mem": "2MB",
        "jit": "on",
    }


def test_parse_setting_lines_error_names_the_origin() -> None:
    with pytest.raises(pytest.UsageError, match=r"my_origin: expected 'name = value'"):
        parse_setting_lines(["work_mem"], "my_origin")
