"""Who sent a command, in its headers: every command producer names its principal the same way."""
from __future__ import annotations

PRINCIPAL_HEADER = "hive_principal"
AGENT, SYSTEM = "agent:", "system:"  # events name these when no account acted: an executor, or the fabric itself


def principal_header(principal: str) -> tuple[str, bytes]:
    return PRINCIPAL_HEADER, principal.encode()


def acts_for_account(principal: str | None) -> bool:
    """An account (`tenant/sub`) rather than an agent or the system."""
    return bool(principal) and not principal.startswith((AGENT, SYSTEM))
