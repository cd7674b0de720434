"""The cyclic garbage collector paused while state is folded in bulk, and spaced out while deciding.

A fold builds long-lived states out of frozen records, tuples and dicts, which make no reference cycles:
reference counting frees everything a fold drops. The cyclic collector would only traverse the growing
states again and again (a fifth of a fold's time). Paused while any fold runs; afterwards the folded
states are frozen out of its passes and it resumes.

Deciding makes no cycles either (`tests/test_collector.py`), but the states it adds are not frozen: with
Python's default thresholds (700, 10, 10) the collector ran ~17 full passes over them while a worker decided
20,000 commands, 1.3-1.6 s of its 12 s of CPU. `steady` spaces the passes out for every long-running process
(worker, API, executor, audit connector): with the defaults the connector spent 21% of its CPU in the collector,
the API 22%, an executor ~10%. Young cycles (asyncio's, aiokafka's) are still found by the young passes. A cycle
that dies old (a closed feed's consumer, a connection kept alive for minutes) waits for a full pass, which these
thresholds would leave for ~100 million allocations however many bytes it holds: a full pass runs every minute.
"""
from __future__ import annotations

import contextlib
import gc
import threading

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
FULL_PASS_SECONDS = 60.0


class _FullPasses(threading.Thread):
    def __init__(self, every: float):
        super().__init__(name="gc-full-passes", daemon=True)
        self.every, self.wake = every, threading.Event()

    def run(self) -> None:
        while True:
            self.wake.wait(self.every)
            self.wake.clear()
            if gc.isenabled():  # not while a fold has paused the collector
                gc.collect()


_full_passes: _FullPasses | None = None


def steady(full_every: float = FULL_PASS_SECONDS) -> None:
    """A long-running process's collector: what start-up made is out of every pass, young passes are spaced out,
    and a full pass runs every `full_every` seconds."""
    gc.freeze()
    gc.set_threshold(*STEADY_THRESHOLDS)
    steady_full_pass_every(full_every)


def steady_full_pass_every(seconds: float) -> None:
    global _full_passes
    if _full_passes is None:
        _full_passes = _FullPasses(seconds)
        _full_passes.start()
    else:
        _full_passes.every = seconds
        _full_passes.wake.set()
