"""The development signing secret: `up` makes one in $HIVE_HOME so `make run` works with real tokens."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..exceptions import ConfigError

SECRET_FILE = "dev-jwt-secret"


def development_secret(home: str | Path, create: bool = False) -> str | None:
    path = Path(home) / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path.read_text().strip()


def signing_secret(jwt_secret: str, home: str | Path) -> str:
    """HIVE_JWT_SECRET, else the secret `up` made; tokens for a JWKS are minted by its own issuer, not here."""
    secret = jwt_secret or development_secret(home)
    if not secret:
        raise ConfigError("no secret to sign with: set HIVE_JWT_SECRET (or run `hive-streams up` once, "
                          f"which keeps a development secret in {Path(home) / SECRET_FILE})")
    return secret
