"""The one clock of the shells: the domain takes time as an argument."""
from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
