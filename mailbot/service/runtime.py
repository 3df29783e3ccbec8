"""Settings of the Python process itself, for a daemon and its examine workers."""

from __future__ import annotations

import gc


def tune_garbage_collector() -> None:
    """Collect less often. A backlog makes hundreds of thousands of short-lived objects
    (rows, parsed email); with Python's default thresholds the cyclic collector took
    about 8% of a run. What is loaded by now (modules, config, triage rules) lives as
    long as the process, so it is left out of every collection."""
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
