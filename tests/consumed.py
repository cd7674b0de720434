"""A consumed record as a decider sees it, for tests that feed deciders without a broker."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list = field(default_factory=list)
