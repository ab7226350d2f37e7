"""The optional C loop of pg_load's SQL engine (``load/_loop.c``).

Everything else is in ``pyproject.toml``. The extension is built on Linux when
a C compiler and Python's headers are there; when it cannot be built the
install goes on and the same loop runs in Python (``load/engine.py``).
"""

import sys

from setuptools import Extension, setup

extensions = []
if sys.platform.startswith("linux"):
    extensions.append(
        Extension(
            "pytest_pgbudget.load._loop",
            ["src/pytest_pgbudget/load/_loop.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    )

setup(ext_modules=extensions)
