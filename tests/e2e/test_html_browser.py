"""End-to-end: the HTML report in a real headless Chromium.

No browser driver is needed: Chromium runs with ``--dump-dom`` and prints the DOM
after the page has loaded and its scripts ran. The page records script errors
(``window.onerror``, ``console.error``, blocked resources) in the ``data-js-errors``
attribute of ``<html>``; opened with the ``#selftest`` fragment it also clicks
column headers, expands a test and a plan, and writes the verdict into
``data-selftest``. Chromium's own console log on stderr is a second, independent
check: the page never writes to the console, so any console line fails a test.

Install the browser with ``apt-get install -y chromium``. Without ``/usr/bin/chromium``
the tests skip, unless ``PGBUDGET_REQUIRE_BROWSER`` is set (CI), where they fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_pgbudget.report.html import render_html

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT = 20  # seconds per browser run; a run normally takes 1-2 s
# Chromium logs every console message (any level) and every uncaught error this way; the page
# itself never writes to the console, so any such line is a failure.
CONSOLE_LINE = re.compile(r":CONSOLE[:(]\d+\)?\] ")


def _report_builder() -> ModuleType:
    """The unit tests' report builder (real recorded plans), loaded by path."""
    path = Path(__file__).resolve().parent.parent / "unit" / "test_html_report.py"
    spec = importlib.util.spec_from_file_location("_pgbudget_html_report_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def browser() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"{CHROMIUM} not found (apt-get install -y chromium)"
    if os.environ.get("PGBUDGET_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    report: dict[str, Any] = _report_builder().build_report()
    return report


@pytest.fixture
def page(tmp_path: Path, report: dict[str, Any]) -> Path:
    path = tmp_path / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path


class _RootAttributes(HTMLParser):
    """The attributes of the dumped document's ``<html>`` element."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.attrs: dict[str, str | None] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html" and self.attrs is None:
            self.attrs = dict(attrs)


class Loaded:
    """What one headless run of a page left: the ``<html>`` attributes, the DOM, console lines."""

    def __init__(self, dom: str, stderr: str) -> None:
        self.dom = dom
        self.console = [line for line in stderr.splitlines() if CONSOLE_LINE.search(line)]
        attrs = _RootAttributes(dom).attrs
        assert attrs is not None, f"no <html> in the dumped DOM: {dom[:500]!r}"
        self.attrs = attrs

    def json(self, name: str) -> Any:
        value = self.attrs.get(name)
        assert value is not None, f"<html> has no {name}: {self.attrs}"
        return json.loads(value)

    def assert_clean(self) -> None:
        """The page's scripts ran to the end without any error."""
        assert not self.console, "\n".join(self.console)
        assert self.json("data-js-errors") == []
        assert self.attrs.get("data-js-ready") == "1"


def load(browser: Path, page: Path, tmp_path: Path, fragment: str = "") -> Loaded:
    """Open ``page`` (at ``#fragment``) in headless Chromium and dump the DOM."""
    profile = tmp_path / f"profile-{fragment or 'plain'}"
    command = [
        str(browser),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        "--dump-dom",
        page.as_uri() + (f"#{fragment}" if fragment else ""),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return Loaded(done.stdout, done.stderr)


def test_selftest_sorts_and_expands_without_errors(
    browser: Path, page: Path, tmp_path: Path
) -> None:
    loaded = load(browser, page, tmp_path, "selftest")
    loaded.assert_clean()
    result = loaded.json("data-selftest")
    assert "error" not in result, result["error"]
    failed = [name for name, ok in result["checks"].items() if not ok]
    assert not failed, result
    assert result["ok"] is True
    assert len(result["checks"]) >= 10
    order = result["order"]
    assert order["before"] != order["byStatements"]  # clicking the header reordered the rows
    assert sorted(order["before"]) == sorted(order["byStatements"]) == order["byName"]
    assert result["expandedNode"]
    assert result["costlyNodes"] > 0


def test_link_to_a_statement_opens_its_test_and_plan(
    browser: Path, page: Path, tmp_path: Path
) -> None:
    loaded = load(browser, page, tmp_path, "t2s7")  # the nested loop join of the 2nd test
    loaded.assert_clean()
    assert "data-selftest" not in loaded.attrs
    dom = loaded.dom
    assert re.search(r'<tbody id="t2" class="[^"]*\bopen\b', dom)
    row = dom[dom.index('id="t2s7"') :]
    row = row[: row.index("</tr>")]
    assert re.search(r'<details class="plan[^"]*" open="">', row)
    assert not re.search(r'<tbody id="t4" class="[^"]*\bopen\b', dom)  # others stay closed


def test_script_errors_are_caught(browser: Path, page: Path, tmp_path: Path) -> None:
    """The error capture the other tests rely on does see errors, on both channels."""
    html = page.read_text(encoding="utf-8")
    broken = "<script>console.error('boom <b>'); null.x;</script></body>"
    page.write_text(html.replace("</body>", broken), encoding="utf-8")
    loaded = load(browser, page, tmp_path)
    errors = loaded.json("data-js-errors")
    assert errors[0] == "boom <b>"
    assert "TypeError" in errors[1]
    assert len(loaded.console) == 2
    assert "boom <b>" in loaded.console[0]
    assert "Uncaught TypeError" in loaded.console[1]
    assert loaded.attrs.get("data-js-ready") == "1"  # the page's own script still ran
