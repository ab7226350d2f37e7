"""Load budgets: run a workload concurrently and judge its latency, errors and lock waits."""

from .runner import Latency, LoadError, LoadResult, ObservedWait, run_load

__all__ = ["Latency", "LoadError", "LoadResult", "ObservedWait", "run_load"]
