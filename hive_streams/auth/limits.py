"""Rate limits per role, per minute, from one setting: `name=role:n,role:n;name=...`. Pure.

A principal's limit is the highest of its roles' limits; a role without one (or with 0) may not act.
Counts are kept per principal in fixed one-minute windows (the store shares them between processes).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import ConfigError
from .principal import Principal

WINDOW_MS = 60_000

EXECUTIONS_START = "executions.start"  # each submitted task counts; a batch counts its items
WORKFLOWS_CREATE = "workflows.create"
AGENTS_REGISTER = "agents.register"
NAMES = frozenset({EXECUTIONS_START, WORKFLOWS_CREATE, AGENTS_REGISTER})

Limits = dict[str, dict[str, int]]  # name -> role -> per minute


def parse_limits(text: str) -> Limits:
    limits: Limits = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, eq, roles = part.partition("=")
        name = name.strip()
        if not eq or name not in NAMES:
            raise ConfigError(f"HIVE_RATE_LIMITS: {part!r} is not `name=role:n,...` with a name of {sorted(NAMES)}")
        limits[name] = {}
        for item in filter(None, (r.strip() for r in roles.split(","))):
            role, colon, count = item.partition(":")
            if not colon or not role.strip() or not count.strip().isdigit():
                raise ConfigError(f"HIVE_RATE_LIMITS: {item!r} in {name} is not `role:n` (n a whole number)")
            limits[name][role.strip()] = int(count)
    return limits


def limit_for(limits: Limits, principal: Principal, name: str) -> int:
    by_role = limits.get(name, {})
    return max((by_role.get(role, 0) for role in principal.roles), default=0)


@dataclass(frozen=True)
class Window:
    start: int  # epoch ms
    retry_after: int  # whole seconds until the next window


def window_at(now_ms: int) -> Window:
    start = now_ms - now_ms % WINDOW_MS
    return Window(start, max(1, -(-(start + WINDOW_MS - now_ms) // 1000)))
