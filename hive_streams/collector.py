"""The cyclic garbage collector paused while state is folded in bulk.

A fold builds long-lived states out of frozen records, tuples and dicts, which make no reference cycles:
reference counting frees everything a fold drops. The cyclic collector would only traverse the growing
states again and again (a fifth of a fold's time). Paused while any fold runs; afterwards the folded
states are frozen out of its passes and it resumes.
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
