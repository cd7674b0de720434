"""Who may do what, decided here and nowhere else. Pure.

A role grants a permission with a scope: everywhere, within the principal's tenant, or on its own
account. A token's `permissions` claim keeps only the permissions it names (`agents.*` names a
family): it narrows the roles, never widens them.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from .principal import Principal

PUBLIC = "public"  # a route anyone may call, without a token

TASKS_CREATE = "tasks.create"
EXECUTIONS_VIEW = "executions.view"
EXECUTIONS_CANCEL = "executions.cancel"
EXECUTIONS_ASSIGN = "executions.assign"
EXECUTIONS_START = "executions.start"
WORKFLOWS_CREATE = "workflows.create"
WORKFLOWS_VIEW = "workflows.view"
AGENTS_VIEW = "agents.view"
AGENTS_MANAGE = "agents.manage"
ACCOUNTS_VIEW = "accounts.view"
ACCOUNTS_WITHDRAW = "accounts.withdraw"
ACCOUNTS_DEPOSIT = "accounts.deposit"
CLUSTER_VIEW = "cluster.view"
SCHEDULES_CREATE = "schedules.create"
SCHEDULES_VIEW = "schedules.view"
SCHEDULES_DELETE = "schedules.delete"
TRIGGERS_CREATE = "triggers.create"
TRIGGERS_VIEW = "triggers.view"
TRIGGERS_DELETE = "triggers.delete"


class Scope(IntEnum):
    """Where a granted permission reaches; a wider scope is a larger number."""
    ACCOUNT = 1
    TENANT = 2
    ALL = 3


A, T, O, NO = Scope.ALL, Scope.TENANT, Scope.ACCOUNT, None
# permission:            admin developer viewer service
_MATRIX = {
    TASKS_CREATE:         (A, T, NO, NO),
    EXECUTIONS_VIEW:      (A, T, T, A),
    EXECUTIONS_CANCEL:    (A, T, NO, NO),
    EXECUTIONS_ASSIGN:    (A, NO, NO, NO),
    EXECUTIONS_START:     (A, T, NO, NO),
    WORKFLOWS_CREATE:     (A, T, NO, NO),
    WORKFLOWS_VIEW:       (A, T, T, NO),
    AGENTS_VIEW:          (A, A, A, A),
    AGENTS_MANAGE:        (A, NO, NO, NO),
    ACCOUNTS_VIEW:        (A, O, O, NO),
    ACCOUNTS_WITHDRAW:    (A, O, NO, NO),
    ACCOUNTS_DEPOSIT:     (A, NO, NO, NO),
    CLUSTER_VIEW:         (A, T, T, A),
    SCHEDULES_CREATE:     (A, T, NO, NO),
    SCHEDULES_VIEW:       (A, T, T, NO),
    SCHEDULES_DELETE:     (A, T, NO, NO),
    TRIGGERS_CREATE:      (A, T, NO, NO),
    TRIGGERS_VIEW:        (A, T, T, NO),
    TRIGGERS_DELETE:      (A, T, NO, NO),
}
ROLES = ("admin", "developer", "viewer", "service")
GRANTS: dict[str, dict[str, Scope]] = {
    role: {perm: scopes[i] for perm, scopes in _MATRIX.items() if scopes[i] is not None}
    for i, role in enumerate(ROLES)}
PERMISSIONS = frozenset(_MATRIX)
del A, T, O, NO


class Verdict(Enum):
    ALLOW = "allow"
    FORBIDDEN = "forbidden"  # 403: the principal may never do this
    HIDDEN = "hidden"  # 404: it may, but not on this resource, whose existence is not revealed


@dataclass(frozen=True)
class Owner:
    """Whose a resource is: a task belongs to a tenant, an account to a tenant and an account."""
    tenant: str
    account: str | None = None


def _named(principal: Principal, permission: str) -> bool:
    if principal.permissions is None:
        return True
    family = permission.split(".")[0]
    return bool({permission, f"{family}.*", "*"} & principal.permissions)


def scope_of(principal: Principal, permission: str) -> Scope | None:
    """The widest scope any of its roles grants, or None when it lacks the permission."""
    if permission not in PERMISSIONS or not _named(principal, permission):
        return None
    return max((GRANTS.get(role, {}).get(permission) for role in principal.roles
                if permission in GRANTS.get(role, {})), default=None)


def decide(principal: Principal, permission: str, owner: Owner | None = None) -> Verdict:
    """May `principal` use `permission` on what `owner` owns? No owner: a collection, or a new resource."""
    scope = scope_of(principal, permission)
    if scope is None:
        return Verdict.FORBIDDEN
    if scope is Scope.ALL or owner is None:
        return Verdict.ALLOW
    if scope is Scope.TENANT:
        return Verdict.ALLOW if owner.tenant == principal.tenant else Verdict.HIDDEN
    return Verdict.ALLOW if owner.account == principal.account else Verdict.HIDDEN


def needs_owner(principal: Principal, permission: str) -> bool:
    """Whether the verdict depends on whose the resource is (worth a lookup)."""
    scope = scope_of(principal, permission)
    return scope is not None and scope is not Scope.ALL
