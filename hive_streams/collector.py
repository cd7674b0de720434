"""The cyclic garbage collector paused while state is folded in bulk, and spaced out while deciding.

A fold builds long-lived states out of frozen records, tuples and dicts, which make no reference cycles:
reference counting frees everything a fold drops. The cyclic collector would only traverse the growing
states again and again (a fifth of a fold's time). Paused while any fold runs; afterwards the folded
states are frozen out of its passes and it resumes.

Deciding makes no cycles either (`tests/test_collector.py`), but the states it adds are not frozen: with
Python's default thresholds (700, 10, 10) the collector ran ~17 full passes over them while a worker decided
20,000 commands, 1.3-1.6 s of its 12 s of CPU. `steady` spaces the passes out for the worker, the executors and
the audit connector (with the defaults the connector spent 21% of its CPU in the collector, an executor ~10%);
young cycles (asyncio's, aiokafka's) are still found by the young passes. A cycle that dies old waits for a full
pass, which these thresholds leave for ~100 million allocations: the API, whose feeds leave such cycles (a closed
stream, a feed's own consumer), keeps Python's thresholds and only freezes what start-up made (22% -> 14%).
"""
from __future__ import annotations

import contextlib
import gc

_folding = 0


@contextlib.contextmanager
def folding():
    global _folding
    if _folding == 0:
        gc.disable()
    _folding += 1
    try:
        yield
    finally:
        _folding -= 1
        if _folding == 0:
            gc.freeze()
            gc.enable()


STEADY_THRESHOLDS = (50_000, 20, 100)  # young pass every 50,000 allocations net; full pass every 2,000 of them


def freeze_start_up() -> None:
    """What start-up made (modules, classes, settings) lives as long as the process: out of every pass."""
    gc.freeze()


def steady() -> None:
    """A long-running process whose garbage dies young: start-up frozen, passes spaced out."""
    freeze_start_up()
    gc.set_threshold(*STEADY_THRESHOLDS)
