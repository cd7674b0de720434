"""Who sent a command, in its headers: every command producer names its principal the same way."""
from __future__ import annotations

PRINCIPAL_HEADER = "hive_principal"


def principal_header(principal: str) -> tuple[str, bytes]:
    return PRINCIPAL_HEADER, principal.encode()
