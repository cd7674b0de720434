"""JWTs, through PyJWT: HS256 with a shared secret (development), RS256/ES256 with a JWKS (production).

The algorithm a token names picks the key source, and each source accepts only its own algorithms,
so a token cannot pass off the JWKS's public key as an HMAC secret.
"""
from __future__ import annotations

import time
from pathlib import Path

import jwt

from ..exceptions import ConfigError, HiveError
from .principal import ClaimsError, Principal, principal_of

SECRET_ALGORITHM = "HS256"
JWKS_ALGORITHMS = ("RS256", "ES256")
MIN_SECRET_BYTES = 32
LEEWAY_SECONDS = 10
REQUIRED = ["exp", "iat", "sub"]
KEEP_SECONDS = 60  # a verified token is taken again without decoding it for this long, never past its expiry
KEEP_MAX = 4096  # verified tokens kept; the table starts again when full


class InvalidToken(HiveError):
    pass


class KeysUnavailable(HiveError):
    """The JWKS URL did not answer: the token may be fine, the server cannot tell."""


def _jwks(source: str):
    if source.startswith(("https://", "http://")):
        return jwt.PyJWKClient(source, cache_keys=True, lifespan=300, timeout=10)
    try:
        return jwt.PyJWKSet.from_json(Path(source).read_text())
    except (OSError, jwt.PyJWTError) as exc:
        raise ConfigError(f"HIVE_JWT_JWKS: cannot load {source}: {exc}") from None


class TokenVerifier:
    def __init__(self, secret: str = "", jwks: str = "", issuer: str = ""):
        if not secret and not jwks:
            raise ConfigError("no way to check tokens: set HIVE_JWT_SECRET (development) or HIVE_JWT_JWKS")
        if secret and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"HIVE_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        self.secret, self.issuer = secret, issuer or None
        self.keys = _jwks(jwks) if jwks else None
        self.kept: dict[str, tuple[Principal, float]] = {}  # token -> (its principal, taken until)

    @property
    def fetches(self) -> bool:
        """Whether verifying may read the network (then call it off the event loop)."""
        return isinstance(self.keys, jwt.PyJWKClient)

    def verify(self, token: str) -> Principal:
        """A client sends the same token with every request: one that passed is taken again for KEEP_SECONDS
        (what passed then passes now, until it expires; only a key taken out of the JWKS meanwhile would not)."""
        now = time.time()
        kept = self.kept.get(token)
        if kept is not None and now < kept[1]:
            return kept[0]
        principal, expires = self._decode(token)
        if len(self.kept) >= KEEP_MAX:
            self.kept.clear()
        self.kept[token] = (principal, min(now + KEEP_SECONDS, expires + LEEWAY_SECONDS))
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            key = self._key(token, algorithm)
            claims = jwt.decode(token, key, algorithms=[algorithm], issuer=self.issuer, leeway=LEEWAY_SECONDS,
                                options={"require": REQUIRED + (["iss"] if self.issuer else [])})
            return principal_of(claims), float(claims["exp"])
        except jwt.PyJWKClientConnectionError as exc:
            raise KeysUnavailable(f"the JWKS could not be fetched: {exc}") from None
        except (jwt.PyJWTError, ClaimsError) as exc:
            raise InvalidToken(f"invalid token: {exc}") from None

    def _key(self, token: str, algorithm: str):
        if algorithm == SECRET_ALGORITHM and self.secret:
            return self.secret
        if algorithm in JWKS_ALGORITHMS and self.keys is not None:
            if isinstance(self.keys, jwt.PyJWKClient):
                return self.keys.get_signing_key_from_jwt(token).key
            kid = jwt.get_unverified_header(token).get("kid")
            keys = self.keys.keys
            if kid is None and len(keys) == 1:
                return keys[0].key
            try:
                return self.keys[kid].key
            except KeyError:
                raise InvalidToken(f"no key {kid!r} in the JWKS") from None
        accepted = ([SECRET_ALGORITHM] if self.secret else []) + (list(JWKS_ALGORITHMS) if self.keys else [])
        raise InvalidToken(f"algorithm {algorithm!r} is not accepted here (accepted: {', '.join(accepted)})")


def mint(secret: str, sub: str, tenant: str, roles: list[str], ttl_seconds: int,
         permissions: list[str] | None = None, issuer: str = "", now: int | None = None) -> str:
    """An HS256 token; its claims are checked as a verifier would check them."""
    issued = int(time.time()) if now is None else now
    claims = {"sub": sub, "tenant": tenant, "roles": list(roles), "iat": issued, "exp": issued + ttl_seconds}
    if permissions is not None:
        claims["permissions"] = list(permissions)
    if issuer:
        claims["iss"] = issuer
    principal_of(claims)
    return jwt.encode(claims, secret, algorithm=SECRET_ALGORITHM)


def parse_ttl(text: str) -> int:
    """`90s`, `30m`, `24h`, `7d` or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 24h or 7d")
    return int(number) * units[unit]
