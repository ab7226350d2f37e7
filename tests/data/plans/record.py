"""Record the corpus of real PostgreSQL plans used by the plan-analysis tests.

Usage::

    python tests/data/plans/record.py "host=/path/to/sock port=5432 user=postgres" tests/data/plans

The script (re)creates a small schema in the target database (it drops its own
tables first, so it can be re-run), loads deterministic data, runs
``VACUUM (ANALYZE)``, then records one JSON file per scenario:

* ``pg{major}_{scenario}.json`` -- ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)``
  output (a one-element list), byte for byte as the server produced it.
* ``pg{major}_autoexplain_{scenario}.json`` -- the plan as the ``auto_explain``
  module logs it with ``log_format = json`` (a ``{"Query Text", "Plan"}`` object).
  ``auto_explain.log_level`` is set to ``notice`` so the logged plan reaches the
  client as a notice and no access to the server log is needed.

Every scenario runs in its own transaction that is rolled back, so data-modifying
scenarios leave the data untouched and transaction-local settings never leak.
The connecting role must be a superuser (``LOAD 'auto_explain'``).
The committed corpus was recorded from PostgreSQL 15.18 and 18.6.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors
from psycopg.types.string import TextLoader

SCHEMA = """
DROP TABLE IF EXISTS orders, accounts, countries CASCADE;

CREATE TABLE countries (
    id integer PRIMARY KEY,
    code text NOT NULL,
    name text NOT NULL
);

CREATE TABLE accounts (
    id integer PRIMARY KEY,
    email text NOT NULL,
    status text NOT NULL,
    score integer NOT NULL,
    country_id integer NOT NULL REFERENCES countries (id),
    created_at timestamptz NOT NULL,
    profile jsonb NOT NULL,
    bio text NOT NULL,
    bio_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', bio)) STORED
);

CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    account_id integer NOT NULL REFERENCES accounts (id),
    amount numeric(10, 2) NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL
);
"""

DATA = """
INSERT INTO countries (id, code, name)
SELECT i, code, name
FROM unnest(
    ARRAY['DE', 'FR', 'NL', 'SE', 'PL', 'ES', 'IT', 'PT'],
    ARRAY['Germany', 'France', 'Netherlands', 'Sweden', 'Poland', 'Spain', 'Italy', 'Portugal']
) WITH ORDINALITY AS c (code, name, i);

INSERT INTO accounts (id, email, status, score, country_id, created_at, profile, bio)
SELECT
    i,
    'user' || i || '@example.com',
    (ARRAY['active', 'closed', 'suspended', 'pending'])[1 + i % 4],
    (i * 37) % 100,
    1 + i % 8,
    timestamptz '2024-01-01 00:00:00+00' + (i * interval '2 minutes'),
    jsonb_build_object(
        'plan', CASE WHEN i % 100 = 0 THEN 'enterprise' WHEN i % 3 = 0 THEN 'pro' ELSE 'free' END,
        'newsletter', i % 2 = 0
    ),
    (ARRAY['likes hiking and coffee', 'writes rust on weekends', 'sells vintage bikes',
           'bakes sourdough bread', 'plays chess online', 'runs marathons',
           'collects vinyl records'])[1 + i % 7]
    || CASE WHEN i % 997 = 0 THEN ' and tunes postgres budgets' ELSE '' END
FROM generate_series(1, 200000) AS i;

INSERT INTO orders (account_id, amount, status, created_at)
SELECT
    1 + (i::bigint * 7919) % 200000,
    ((i * 13) % 50000) / 100.0,
    (ARRAY['paid', 'shipped', 'refunded'])[1 + i % 3],
    timestamptz '2024-01-01 00:00:00+00' + (i * interval '1 minute')
FROM generate_series(1, 300000) AS i;

CREATE INDEX accounts_email_idx ON accounts (email);
CREATE INDEX accounts_created_at_idx ON accounts (created_at);
CREATE INDEX accounts_profile_idx ON accounts USING gin (profile);
CREATE INDEX accounts_bio_tsv_idx ON accounts USING gin (bio_tsv);
CREATE INDEX orders_account_id_idx ON orders (account_id);
"""

SERIAL = (("max_parallel_workers_per_gather", "0"),)
TINY_WORK_MEM = (*SERIAL, ("work_mem", "64kB"))
FORCE_PARALLEL = (
    ("max_parallel_workers_per_gather", "2"),
    ("parallel_setup_cost", "0"),
    ("parallel_tuple_cost", "0"),
    ("min_parallel_table_scan_size", "0"),
)


@dataclass(frozen=True)
class Scenario:
    """One statement to explain, with the settings it needs to get its plan shape."""

    name: str
    sql: str
    settings: tuple[tuple[str, str], ...] = SERIAL
    options: tuple[str, ...] = ("ANALYZE", "BUFFERS")
    auto_explain: bool = False


SCENARIOS = (
    Scenario(
        "seq_scan_large",
        "SELECT id, email FROM accounts WHERE status = 'suspended' AND score > 90",
        auto_explain=True,
    ),
    Scenario(
        "seq_scan_estimated",
        "SELECT id, email FROM accounts WHERE status = 'suspended' AND score > 90",
        options=(),
    ),
    Scenario("seq_scan_tiny_lookup", "SELECT id, name FROM countries WHERE code = 'SE'"),
    Scenario("index_scan", "SELECT * FROM accounts WHERE email = 'user4242@example.com'"),
    Scenario("index_only_scan", "SELECT id FROM accounts WHERE id BETWEEN 1000 AND 1100"),
    Scenario(
        "index_scan_backward",
        "SELECT id, email, created_at FROM accounts ORDER BY created_at DESC LIMIT 5",
    ),
    Scenario(
        "bitmap_index_scan",
        "SELECT id, status FROM accounts"
        " WHERE id < 300 OR email IN ('user150000@example.com', 'user170000@example.com')",
    ),
    Scenario(
        "gin_jsonb_containment",
        """SELECT id FROM accounts WHERE profile @> '{"plan": "enterprise"}'""",
    ),
    Scenario(
        "fulltext_gin",
        "SELECT id, bio FROM accounts WHERE bio_tsv @@ to_tsquery('english', 'postgres & budget')",
    ),
    Scenario(
        "nested_loop_join",
        "SELECT a.email, o.amount FROM accounts AS a"
        " JOIN orders AS o ON o.account_id = a.id WHERE a.id < 200",
        auto_explain=True,
    ),
    Scenario(
        "hash_join_multibatch",
        "SELECT a.email, o.amount FROM orders AS o JOIN accounts AS a ON a.id = o.account_id",
        settings=TINY_WORK_MEM,
    ),
    Scenario(
        "external_sort",
        "SELECT id, email FROM accounts ORDER BY score DESC, email",
        settings=TINY_WORK_MEM,
        auto_explain=True,
    ),
    Scenario(
        "hashagg_spill",
        "SELECT amount, count(*) FROM orders GROUP BY amount",
        settings=(*TINY_WORK_MEM, ("enable_sort", "off")),
    ),
    Scenario(
        "cte_spill",
        "WITH o AS MATERIALIZED (SELECT account_id, amount FROM orders)"
        " SELECT (SELECT count(*) FROM o) AS n, (SELECT max(amount) FROM o) AS top",
        settings=TINY_WORK_MEM,
    ),
    Scenario(
        "subplan_initplan",
        "SELECT a.id, (SELECT count(*) FROM orders AS o WHERE o.account_id = a.id) AS n_orders"
        " FROM accounts AS a"
        " WHERE a.id < 50 AND a.score > (SELECT avg(score) FROM accounts)",
    ),
    Scenario(
        "parallel_seq_scan",
        "SELECT count(*) FROM accounts WHERE score < 10",
        settings=FORCE_PARALLEL,
        options=("ANALYZE", "BUFFERS", "VERBOSE"),
    ),
    Scenario(
        "insert_returning",
        "INSERT INTO orders (account_id, amount, status, created_at)"
        " VALUES (1, 9.99, 'paid', now()), (2, 19.99, 'paid', now()) RETURNING id",
    ),
    Scenario(
        "update_with_index",
        "UPDATE accounts SET score = score + 1 WHERE email = 'user777@example.com'",
    ),
)


def build_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the tables, load the data and make planner statistics current."""
    conn.execute(SCHEMA)
    conn.execute(DATA)
    conn.execute("VACUUM (ANALYZE) countries, accounts, orders")


@contextmanager
def scenario_transaction(conn: psycopg.Connection[Any], scenario: Scenario) -> Iterator[None]:
    """Run the block in a rolled-back transaction carrying the scenario's settings."""
    with conn.transaction(force_rollback=True):
        for name, value in scenario.settings:
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        yield


def explain(conn: psycopg.Connection[Any], scenario: Scenario) -> str:
    """Return the ``EXPLAIN ... FORMAT JSON`` text for ``scenario``."""
    options = ", ".join((*scenario.options, "FORMAT JSON"))
    with scenario_transaction(conn, scenario), conn.cursor() as cursor:
        # Keep the server's own text (e.g. PG18's "Actual Rows": 1.00) instead
        # of letting psycopg parse the json column.
        cursor.adapters.register_loader("json", TextLoader)
        row = cursor.execute(f"EXPLAIN ({options}) {scenario.sql}").fetchone()
    assert row is not None
    text: str = row[0]
    return text


def auto_explain(conn: psycopg.Connection[Any], scenario: Scenario) -> str:
    """Run ``scenario`` for real and return the plan text ``auto_explain`` logged for it."""
    logged: list[str] = []

    def collect(diagnostic: errors.Diagnostic) -> None:
        message = diagnostic.message_primary or ""
        if "plan:" in message:  # "duration: 1.234 ms  plan:\n{...}"
            logged.append(message[message.index("{") :])

    conn.add_notice_handler(collect)
    try:
        with scenario_transaction(conn, scenario):
            for setting, value in (
                ("auto_explain.log_min_duration", "0"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_buffers", "on"),
                ("auto_explain.log_format", "json"),
                ("auto_explain.log_level", "notice"),
            ):
                conn.execute("SELECT set_config(%s, %s, true)", (setting, value))
            cursor = conn.execute(scenario.sql)
            if cursor.description is not None:
                cursor.fetchall()
    finally:
        conn.remove_notice_handler(collect)
    # The set_config() calls above are logged too: keep the scenario's own plan.
    (plan,) = (text for text in logged if json.loads(text)["Query Text"] == scenario.sql)
    return plan


def write(path: Path, text: str) -> None:
    """Write one recorded plan, checking first that it is valid JSON."""
    json.loads(text)
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def record(dsn: str, out_dir: Path) -> None:
    """Build the schema behind ``dsn`` and record every scenario into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        major = conn.info.server_version // 10000
        build_schema(conn)
        conn.execute("LOAD 'auto_explain'")
        for scenario in SCENARIOS:
            write(out_dir / f"pg{major}_{scenario.name}.json", explain(conn, scenario))
            if scenario.auto_explain:
                path = out_dir / f"pg{major}_autoexplain_{scenario.name}.json"
                write(path, auto_explain(conn, scenario))


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Record the plan corpus for the tests.")
    parser.add_argument("dsn", help="libpq connection string of a scratch database")
    parser.add_argument(
        "out_dir",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="where to write the JSON files (default: this script's directory)",
    )
    args = parser.parse_args()
    record(args.dsn, args.out_dir)


if __name__ == "__main__":
    main()
