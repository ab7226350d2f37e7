"""MkDocs hook: generate docs/reference.md from pytest-pgbudget's own code.

``docs/reference.md`` holds prose and ``<!-- pgbudget:NAME -->`` placeholders.
At build time each placeholder is replaced by a section rendered from the
code: the option table (``pytest_pgbudget.options.OPTIONS``), the marker
keywords (``pytest_pgbudget.budgets.spec.KEYWORDS`` and the ``Budget``
dataclass), the fixtures, the hooks (``pytest_pgbudget.hookspecs``) and the
public classes.

The build fails (``PluginError``) when the docs and the code drift apart:
a marker keyword without a description below, a description for a keyword
that no longer exists, a fixture without a docstring, a hook without a
docstring, or a placeholder missing from the page.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
from collections.abc import Callable
from typing import Any

from mkdocs.exceptions import PluginError

PAGE = "reference.md"

# -- marker keywords: the one piece of prose kept here, keyed by keyword ------------------
#
# Every keyword of pytest_pgbudget.budgets.spec.KEYWORDS must have an entry, and
# every entry must name a keyword: the build fails otherwise.

KEYWORD_DOCS: dict[str, str] = {
    "max_ms": (
        "Fails when the slowest captured statement took longer than this many milliseconds "
        "(server-side duration, as auto_explain reports it). Accepts an int or a float. "
        "Scaled up on machines slower than the reference (see *Latency calibration* below)."
    ),
    "p95_ms": (
        "Fails when the 95th percentile of the test's statement durations is higher. "
        "Nearest-rank percentile: with fewer than 20 statements it is the maximum. Scaled "
        "like `max_ms`."
    ),
    "total_ms": (
        "Fails when the durations of all the test's statements add up to more than this. "
        "Scaled like `max_ms`."
    ),
    "max_queries": (
        "Fails when the test ran more statements than this. Counts every captured executor "
        "statement, including statements run inside functions; utility statements (`SET`, "
        "`BEGIN`, `COMMIT`, DDL) are not captured and not counted."
    ),
    "max_repeats": (
        "Fails when one statement fingerprint (the SQL with constants and parameters "
        "replaced by `?`) ran more often than this: the N+1 guard. Every offending "
        "fingerprint is reported."
    ),
    "no_seq_scan": (
        "`True`: fails on every Seq Scan that read more than `seq_scan_min_rows` rows (rows "
        "returned plus rows removed by the filter, over all loops). A table name or a list "
        "of names: fails on any Seq Scan of those tables, whatever their size (bare or "
        "schema-qualified names both match). Comes with a `CREATE INDEX` hint when the "
        "filter is a plain `AND` of column comparisons."
    ),
    "seq_scan_min_rows": (
        "The size threshold of `no_seq_scan=True`: a scan that read this many rows or fewer "
        "passes, so small lookup tables may be scanned. Has no effect without "
        "`no_seq_scan`, and none on a list of table names."
    ),
    "require_index": (
        "An index name or a list of names. Fails for each index that no captured plan of "
        "the test (or block) used; Index Scan, Index Only Scan and Bitmap Index Scan all "
        'count. With `plan="capable"` an index also counts when a re-planned statement '
        "could use it."
    ),
    "no_temp_spill": (
        "`True`: fails when a plan node wrote temporary files: an external sort, a "
        "multi-batch hash, a spilled hash aggregate, or another node's temp file "
        "(Materialize, CTE Scan, ...)."
    ),
    "max_buffers": (
        "Fails when a single statement touched more shared buffers than this (hit + read, "
        "the statement's total). Checked per statement, not summed over the test. "
        "Independent of the machine's speed and of cache state: the steadiest CI budget."
    ),
    "load_p95_ms": (
        "Load keyword: judged on every `pg_load(...)` run of the test, not on its captured "
        "statements. Fails when a run's exact 95th-percentile operation latency is higher. A "
        "run of fewer than 20 operations cannot be judged and fails the test, asking for more "
        "operations."
    ),
    "load_p99_ms": (
        "Load keyword: like `load_p95_ms` for the 99th percentile; needs at least 100 "
        "operations per run."
    ),
    "min_throughput": (
        "Load keyword: fails when a `pg_load` run completed fewer operations per second than this."
    ),
    "max_errors": (
        "Load keyword: fails when more than this many operations of a `pg_load` run raised a "
        "database error."
    ),
    "max_lock_wait_ms": (
        "Load keyword: fails when a lock wait observed during a `pg_load` run reached this "
        "many milliseconds; the message names the waiting and the blocking statement."
    ),
    "plan": (
        '`"actual"` or `"capable"`; matters only for `require_index`. `"actual"` checks '
        'the plans that ran. `"capable"` also re-plans each captured statement with plain '
        "`EXPLAIN` (nothing runs again) and `enable_seqscan = off`, as a generic plan when it "
        "has parameters (`GENERIC_PLAN` on PostgreSQL 16+, a prepared statement with "
        "`plan_cache_mode = force_generic_plan` on 15), to prove the index *can* serve it."
    ),
    "off": (
        "`True`: no keyword is checked for this test, including those from "
        "`pgbudget_default_budget`. `pytest_pgbudget_check` hook implementations still run."
    ),
}

#: Fixtures shown first, in this order; any other fixture of the plugin follows.
FIXTURE_ORDER = ("pg_server", "pg_db", "pg_conn", "pg_queries", "pgbudget")


# -- small helpers ---------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: pipes outside code spans are escaped.

    (Python-Markdown's tables never split a cell at a pipe inside a code span,
    and an escape there would show as a backslash.)
    """
    parts = " ".join(str(text).split()).split("`")
    return "`".join(part if i % 2 else part.replace("|", "\\|") for i, part in enumerate(parts))


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


_ROLES = re.compile(r":(?:class|func|data|mod|meth|attr|exc):`~?([^`]+)`")


def rst_to_markdown(doc: str | None) -> str:
    """Turn a docstring's reST bits (``x``, :class:`X`, ``Example::`` blocks) into Markdown."""
    if not doc:
        return ""
    text = inspect.cleandoc(doc)
    text = _ROLES.sub(lambda m: f"``{m.group(1).rsplit('.', 1)[-1]}``", text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            head = line.rstrip()[:-2].rstrip()
            if head:
                out.append(head + ":")
            i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            code = textwrap.dedent("\n".join(block)).strip("\n")
            out += ["", "```python", code, "```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip()


def _first_paragraph(doc: str | None) -> str:
    return rst_to_markdown(doc).split("\n\n", 1)[0].replace("\n", " ")


def _annotation(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def _signature(name: str, func: Callable[..., Any]) -> str:
    """``name(a: T, *, b: U = 1) -> R`` with string annotations shown without quotes."""
    sig = inspect.signature(func)
    parts: list[str] = []
    star_done = False
    for param in sig.parameters.values():
        if param.name in ("self", "cls") and not parts:
            continue
        if param.kind is param.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        if param.kind is param.VAR_POSITIONAL:
            star_done = True
            text = f"*{param.name}"
        elif param.kind is param.VAR_KEYWORD:
            text = f"**{param.name}"
        else:
            text = param.name
        annotation = _annotation(param.annotation)
        if annotation:
            text += f": {annotation}"
        if param.default is not inspect.Parameter.empty:
            text += f" = {param.default!r}" if annotation else f"={param.default!r}"
        parts.append(text)
    returns = _annotation(sig.return_annotation)
    return f"{name}({', '.join(parts)})" + (f" -> {returns}" if returns else "")


# -- sections ----------------------------------------------------------------------------


def render_precedence() -> str:
    from pytest_pgbudget import options

    doc = rst_to_markdown(options.__doc__)
    body = doc.split("\n\n", 1)[1] if "\n\n" in doc else doc
    start = body.find("Precedence")
    return body[start:] if start >= 0 else body


def render_options() -> str:
    from pytest_pgbudget.options import OPTIONS

    rows = [
        "| name | command line | ini key | environment | default | what it does |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for option in OPTIONS:
        if option.cli:
            metavar = f" [{option.metavar}]" if option.const else f"={option.metavar}"
            flag = _code(option.flag + metavar)
        else:
            flag = "—"
        default = _code(option.default) if option.default else "(none)"
        help_text = _cell(option.help)
        if option.const:
            help_text += f" The flag alone means `{option.const}`."
        if option.ini_type == "linelist":
            help_text += " Several lines in the ini file; one value per line."
        rows.append(
            f"| `{option.name}` | {flag} | `{option.ini}` | `{option.env}` | {default} "
            f"| {help_text} |"
        )
    return "\n".join(rows)


def _keyword_errors() -> list[str]:
    from pytest_pgbudget.budgets.spec import KEYWORDS

    errors = [
        f"marker keyword {key!r} has no description in docs/hooks/reference.py (KEYWORD_DOCS)"
        for key in KEYWORDS
        if not KEYWORD_DOCS.get(key, "").strip()
    ]
    errors += [
        f"docs/hooks/reference.py describes {key!r}, which is not a marker keyword any more"
        for key in KEYWORD_DOCS
        if key not in KEYWORDS
    ]
    return errors


def render_keywords() -> str:
    from pytest_pgbudget.budgets.spec import KEYWORDS, Budget

    errors = _keyword_errors()
    if errors:
        raise PluginError("reference: " + "; ".join(errors))
    fields = {f.name: f for f in dataclasses.fields(Budget)}
    rows = [
        "| keyword | type | default | fails when / means |",
        "| --- | --- | --- | --- |",
    ]
    for key in KEYWORDS:
        field = fields[key]
        default = field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        rows.append(
            f"| `{key}` | {_cell(_code(_annotation(field.type)))} | `{default!r}` "
            f"| {_cell(KEYWORD_DOCS[key])} |"
        )
    return "\n".join(rows)


def render_marker_merge() -> str:
    from pytest_pgbudget.budgets.enforce import resolve_marker

    return rst_to_markdown(resolve_marker.__doc__)


def render_calibration() -> str:
    from pytest_pgbudget.budgets import enforce

    return (
        rst_to_markdown(enforce.calibrate.__doc__)
        + "\n\n"
        + f"The reference median is `REFERENCE_MS = {enforce.REFERENCE_MS:g}` ms for the "
        "workload `SELECT sum(g) FROM generate_series(1, 200000) g`, run 5 times on the "
        "first use of a latency keyword in the session (per pytest-xdist worker), and "
        "again when a marker's latency ceiling breaks: if the machine has got slower "
        "since, the ceiling is scaled by the new factor before the test is failed. "
        "Budgets in a `pgbudget.budget(...)` block are not scaled."
    )


def _fixture_info(name: str) -> tuple[str, str]:
    """(scope, docstring) of one of the plugin's fixtures."""
    from pytest_pgbudget import factories, plugin

    fixture = getattr(plugin, name)
    marker = getattr(fixture, "_fixture_function_marker", None)
    if marker is None:
        from _pytest.fixtures import getfixturemarker

        marker = getfixturemarker(fixture)
    scope = getattr(marker, "scope", "function") or "function"
    unwrap = getattr(fixture, "_get_wrapped_function", None)
    function = unwrap() if unwrap is not None else getattr(fixture, "__wrapped__", fixture)
    doc = inspect.getdoc(function)
    if not doc and hasattr(factories, name):
        # Made by the factory of the same name: its docstring describes it.
        factory_doc = inspect.getdoc(getattr(factories, name))
        if factory_doc:
            what = re.sub(r"^Make (an?) ", r"\1 ", factory_doc)
            doc = f"Made by ``factories.{name}()``: {what[:1].lower()}{what[1:]}"
    if not doc:
        raise PluginError(f"reference: fixture {name!r} has no docstring (nor has its factory)")
    return str(scope), doc


def _plugin_fixtures() -> list[str]:
    """Every fixture the plugin module defines, the documented order first."""
    from pytest_pgbudget import plugin

    found = [
        name
        for name, value in vars(plugin).items()
        if hasattr(value, "_fixture_function_marker") or hasattr(value, "_pytestfixturefunction")
    ]
    if not found:
        raise PluginError("reference: no fixtures found in pytest_pgbudget.plugin")
    return [n for n in FIXTURE_ORDER if n in found] + [n for n in found if n not in FIXTURE_ORDER]


def _fixture_value(name: str) -> Any:
    """The class of a fixture's value, from its function's return annotation."""
    import collections.abc
    import typing

    from pytest_pgbudget import plugin

    fixture = getattr(plugin, name)
    unwrap = getattr(fixture, "_get_wrapped_function", None)
    function = unwrap() if unwrap is not None else getattr(fixture, "__wrapped__", fixture)
    try:
        value = typing.get_type_hints(function).get("return")
    except Exception:  # an annotation that cannot be resolved: show none
        return None
    if typing.get_origin(value) in (collections.abc.Iterator, collections.abc.Generator):
        value = typing.get_args(value)[0]
    return typing.get_origin(value) or value


def render_fixtures() -> str:
    out = []
    for name in _plugin_fixtures():
        scope, doc = _fixture_info(name)
        value = _fixture_value(name)
        line = f"Scope: **{scope}**."
        if isinstance(value, type):
            if value in _api_classes():
                line += f" Value: [`{value.__name__}`](#{value.__name__.lower()})."
            else:
                line += f" Value: `{value.__module__}.{value.__qualname__}`."
        out += [f"### `{name}`", "", line, "", rst_to_markdown(doc), ""]
    return "\n".join(out)


def _api_classes() -> list[type]:
    """The public classes: those exported by ``pytest_pgbudget`` and the fixtures' values."""
    import pytest_pgbudget

    found: list[type] = []
    for name in _plugin_fixtures():
        value = _fixture_value(name)
        if isinstance(value, type) and value.__module__.startswith("pytest_pgbudget"):
            found.append(value)
    for name in sorted(pytest_pgbudget.__all__):
        value = getattr(pytest_pgbudget, name)
        if (
            isinstance(value, type)
            and not issubclass(value, (BaseException, Warning))
            and value not in found
        ):
            found.append(value)
    return found


def _members(cls: type) -> list[tuple[str, str, str]]:
    """(name, kind/type, description) of a class's public fields, properties and methods."""
    found: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    if dataclasses.is_dataclass(cls):
        for field in dataclasses.fields(cls):
            if field.name.startswith("_"):
                continue
            seen.add(field.name)
            found.append((field.name, _annotation(field.type), ""))
    for name, member in cls.__dict__.items():
        if name.startswith("_") or name in seen:
            continue
        if isinstance(member, property):
            hint = ""
            getter = member.fget
            if getter is not None:
                hint = _annotation(inspect.signature(getter).return_annotation)
            found.append((name, f"property: {hint}" if hint else "property", member.__doc__ or ""))
        elif hasattr(member, "func") and hasattr(member, "attrname"):  # functools.cached_property
            hint = _annotation(inspect.signature(member.func).return_annotation)
            found.append((name, f"property: {hint}", member.__doc__ or ""))
        elif inspect.isfunction(member):
            found.append((name, f"`{_signature(name, member)}`", member.__doc__ or ""))
        elif isinstance(member, (classmethod, staticmethod)):
            found.append(
                (name, f"`{_signature(name, member.__func__)}`", member.__func__.__doc__ or "")
            )
    return found


def render_class(cls: type, *, heading: bool = True) -> str:
    out = []
    if heading:
        out += [f"### `{cls.__name__}`", "", f"`{cls.__module__}.{cls.__qualname__}`", ""]
    doc = rst_to_markdown(inspect.getdoc(cls))
    if doc:
        out += [doc, ""]
    protocol = [
        label
        for dunder, label in (
            ("__iter__", "iteration"),
            ("__len__", "`len()`"),
            ("__getitem__", "indexing"),
            ("__enter__", "`with`"),
        )
        if dunder in vars(cls)
    ]
    if protocol:
        line = f"Supports {', '.join(protocol)}."
        getitem = vars(cls).get("__getitem__")
        if getitem is not None:
            item = _annotation(inspect.signature(getitem).return_annotation)
            if item:
                line += f" Items are `{item}`."
        out += [line, ""]
    if "__call__" in vars(cls):
        out += [
            "An instance is called as:",
            "",
            "```python",
            _signature(f"<{cls.__name__} instance>", vars(cls)["__call__"]),
            "```",
            "",
        ]
    members = _members(cls)
    if members:
        out += ["| member | type / signature | description |", "| --- | --- | --- |"]
        from pytest_pgbudget.budgets.spec import Budget

        for name, kind, description in members:
            if cls is Budget and not description and name in KEYWORD_DOCS:
                description = (
                    "The marker keyword of the same name; see [the marker](#the-pgbudget-marker)."
                )
            kind_cell = _cell(kind if kind.startswith("`") else _code(kind))
            if kind.startswith("property: "):
                kind_cell = "property, " + _cell(_code(kind.removeprefix("property: ")))
            out.append(f"| `{name}` | {kind_cell} | {_cell(_first_paragraph(description))} |")
    return "\n".join(out)


def render_api() -> str:
    from pytest_pgbudget.budgets import Violation

    classes = _api_classes()
    if Violation not in classes:
        classes.append(Violation)
    return "\n".join(render_class(cls) + "\n" for cls in classes)


def render_factories() -> str:
    from pytest_pgbudget import factories

    out = [rst_to_markdown(factories.__doc__), ""]
    for name in ("pg_server", "pg_db", "pg_conn"):
        func = getattr(factories, name)
        out += [
            f"### `factories.{name}`",
            "",
            "```python",
            _signature(f"factories.{name}", func),
            "```",
            "",
            rst_to_markdown(inspect.getdoc(func)),
            "",
        ]
    return "\n".join(out)


def render_hooks() -> str:
    from pytest_pgbudget import hookspecs

    out = [rst_to_markdown(hookspecs.__doc__), ""]
    names = [
        name
        for name, value in vars(hookspecs).items()
        if name.startswith("pytest_pgbudget_") and inspect.isfunction(value)
    ]
    if not names:
        raise PluginError("reference: no hooks found in pytest_pgbudget.hookspecs")
    for name in names:
        func = getattr(hookspecs, name)
        doc = inspect.getdoc(func)
        if not doc:
            raise PluginError(f"reference: hook {name} has no docstring")
        out += [
            f"### `{name}`",
            "",
            "```python",
            _signature(name, func),
            "```",
            "",
            rst_to_markdown(doc),
            "",
        ]
    return "\n".join(out)


def render_errors() -> str:
    import pytest_pgbudget

    rows = ["| class | base | raised / shown when |", "| --- | --- | --- |"]
    for name in pytest_pgbudget.__all__:
        value = getattr(pytest_pgbudget, name)
        if isinstance(value, type) and issubclass(value, (Exception, Warning)):
            base = value.__mro__[1].__name__
            rows.append(f"| `{name}` | `{base}` | {_cell(_first_paragraph(value.__doc__))} |")
    return "\n".join(rows)


SECTIONS: dict[str, Callable[[], str]] = {
    "precedence": render_precedence,
    "options": render_options,
    "keywords": render_keywords,
    "marker-merge": render_marker_merge,
    "calibration": render_calibration,
    "fixtures": render_fixtures,
    "factories": render_factories,
    "hooks": render_hooks,
    "api": render_api,
    "errors": render_errors,
}


# -- MkDocs events -------------------------------------------------------------------------


def on_pre_build(config: Any) -> None:
    """Fail fast, before any page is read, when the keyword descriptions drift."""
    errors = _keyword_errors()
    if errors:
        raise PluginError("reference: " + "; ".join(errors))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    for name, render in SECTIONS.items():
        marker = f"<!-- pgbudget:{name} -->"
        if marker not in markdown:
            raise PluginError(f"reference: {PAGE} lacks the placeholder {marker}")
        markdown = markdown.replace(marker, render())
    leftover = re.findall(r"<!-- pgbudget:[\w-]+ -->", markdown)
    if leftover:
        raise PluginError(f"reference: unknown placeholders in {PAGE}: {', '.join(leftover)}")
    return markdown
