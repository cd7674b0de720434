"""Who acts: a user or a service, with its tenant and roles, read from a token's claims. Pure."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..domain.tenancy import account_tenant as tenant_of  # noqa: F401 (re-exported)
from ..exceptions import HiveError

USER_ROLES = frozenset({"admin", "developer", "viewer"})
SERVICE_ROLES = frozenset({"service"})
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


class ClaimsError(HiveError):
    pass


@dataclass(frozen=True)
class Principal:
    sub: str
    tenant: str
    roles: frozenset[str]
    permissions: frozenset[str] | None = None  # from the token: narrows what the roles allow, never widens
    expires_at: int = 0  # epoch seconds

    @property
    def account(self) -> str:
        """The account it pays from, and the principal its commands carry."""
        return f"{self.tenant}/{self.sub}"

    @property
    def kind(self) -> str:
        return "service" if self.roles <= SERVICE_ROLES else "user"


def principal_of(claims: dict) -> Principal:
    sub, tenant, roles, permissions = (claims.get(k) for k in ("sub", "tenant", "roles", "permissions"))
    for name, value in (("sub", sub), ("tenant", tenant)):
        if not isinstance(value, str) or not NAME.fullmatch(value):
            raise ClaimsError(f"claim {name!r} must be 1 to 128 letters, digits or ._@-, "
                              "starting with a letter or digit")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise ClaimsError("claim 'roles' must be a non-empty list of role names")
    unknown = set(roles) - USER_ROLES - SERVICE_ROLES
    if unknown:
        known = ", ".join(sorted(USER_ROLES | SERVICE_ROLES))
        raise ClaimsError(f"unknown role {sorted(unknown)[0]!r} (roles: {known})")
    if set(roles) & USER_ROLES and set(roles) & SERVICE_ROLES:
        raise ClaimsError("a token is a user's or a service's, not both: service roles cannot mix with user roles")
    listed = isinstance(permissions, list) and all(isinstance(p, str) for p in permissions)
    if permissions is not None and not listed:
        raise ClaimsError("claim 'permissions' must be a list of permission names")
    return Principal(sub, tenant, frozenset(roles), None if permissions is None else frozenset(permissions),
                     int(claims.get("exp", 0)))
