#!/usr/bin/env python
"""Demo: drop one of the guide's indexes and watch the budgets catch it.

    python demo_drop_index.py                                   # idx_workflows_tags_gin
    python demo_drop_index.py idx_system_metrics_timestamp      # another index
    python demo_drop_index.py idx_workflows_tags_gin tests/test_jsonb_queries.py

Runs ``python -m pytest --drop-index NAME [pytest arguments]`` in this
directory: conftest.py drops the index from the template right after the
schema is loaded, as a migration that lost it would. The suite should fail,
naming the query and the index it no longer uses.

Exits 0 when the suite failed (the demo made its point), 1 otherwise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    index = argv[0] if argv and not argv[0].startswith("-") and "/" not in argv[0] else None
    rest = argv[1:] if index else argv
    index = index or "idx_workflows_tags_gin"
    command = [sys.executable, "-m", "pytest", "--drop-index", index, *rest]
    print("$", " ".join(["python", *command[1:]]), flush=True)
    status = subprocess.call(command, cwd=HERE)
    if status == 1:
        print(f"\ndemo: without {index} the suite fails, as it should (pytest exit status 1).")
        return 0
    print(f"\ndemo: expected the suite to fail without {index}; pytest exit status {status}.")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
