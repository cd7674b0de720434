"""The one place that decides who may do what: roles, scopes, narrowing, owners. Pure and fast."""
from __future__ import annotations

import pytest

from hive_streams.auth import Owner, Principal, Scope, Verdict, decide, scope_of
from hive_streams.auth import permissions as p
from hive_streams.auth.principal import ClaimsError, principal_of

ACME, GLOBEX = Owner("acme"), Owner("globex")


def who(*roles: str, permissions=None, tenant: str = "acme", sub: str = "ann") -> Principal:
    return Principal(sub, tenant, frozenset(roles), None if permissions is None else frozenset(permissions))


# The table, as written there (a task is an execution); `service` is this product's own role.
TABLE = {
    p.TASKS_CREATE: {"admin": "all", "developer": "tenant"},
    p.EXECUTIONS_VIEW: {"admin": "all", "developer": "tenant", "viewer": "tenant", "service": "all"},
    p.EXECUTIONS_CANCEL: {"admin": "all", "developer": "tenant"},
    p.EXECUTIONS_ASSIGN: {"admin": "all"},
    p.AGENTS_VIEW: {"admin": "all", "developer": "all", "viewer": "all", "service": "all"},
    p.AGENTS_MANAGE: {"admin": "all"},
    p.ACCOUNTS_VIEW: {"admin": "all", "developer": "account", "viewer": "account"},
    p.ACCOUNTS_WITHDRAW: {"admin": "all", "developer": "account"},
    p.ACCOUNTS_DEPOSIT: {"admin": "all"},
    p.CLUSTER_VIEW: {"admin": "all", "developer": "tenant", "viewer": "tenant", "service": "all"},
    p.WORKFLOWS_CREATE: {"admin": "all", "developer": "tenant"},
    p.WORKFLOWS_VIEW: {"admin": "all", "developer": "tenant", "viewer": "tenant"},
    p.EXECUTIONS_START: {"admin": "all", "developer": "tenant"},
    p.SCHEDULES_CREATE: {"admin": "all", "developer": "tenant"},
    p.SCHEDULES_VIEW: {"admin": "all", "developer": "tenant", "viewer": "tenant"},
    p.SCHEDULES_DELETE: {"admin": "all", "developer": "tenant"},
    p.TRIGGERS_CREATE: {"admin": "all", "developer": "tenant"},
    p.TRIGGERS_VIEW: {"admin": "all", "developer": "tenant", "viewer": "tenant"},
    p.TRIGGERS_DELETE: {"admin": "all", "developer": "tenant"},
}


@pytest.mark.parametrize("permission", sorted(p.PERMISSIONS))
@pytest.mark.parametrize("role", p.ROLES)
def test_each_role_gets_what_the_table_says(role, permission):
    expected = TABLE[permission].get(role)
    assert scope_of(who(role), permission) == (None if expected is None else Scope[expected.upper()])


def test_the_table_covers_every_permission():
    assert set(TABLE) == p.PERMISSIONS


def test_tenant_scope_hides_other_tenants_resources():
    dev = who("developer")
    assert decide(dev, p.EXECUTIONS_VIEW, ACME) is Verdict.ALLOW
    assert decide(dev, p.EXECUTIONS_VIEW, GLOBEX) is Verdict.HIDDEN
    assert decide(dev, p.EXECUTIONS_VIEW) is Verdict.ALLOW  # a collection: filtered by tenant, not refused
    assert decide(who("admin"), p.EXECUTIONS_VIEW, GLOBEX) is Verdict.ALLOW


def test_account_scope_is_the_principal_own_account_only():
    dev = who("developer", sub="ann")
    assert decide(dev, p.ACCOUNTS_WITHDRAW, Owner("acme", "acme/ann")) is Verdict.ALLOW
    assert decide(dev, p.ACCOUNTS_WITHDRAW, Owner("acme", "acme/bob")) is Verdict.HIDDEN  # same tenant, not its own
    assert decide(who("viewer"), p.ACCOUNTS_WITHDRAW, Owner("acme", "acme/ann")) is Verdict.FORBIDDEN
    assert decide(who("admin"), p.ACCOUNTS_WITHDRAW, Owner("globex", "globex/bob")) is Verdict.ALLOW


def test_a_permissions_claim_narrows_and_never_widens():
    narrowed = who("developer", permissions=[p.EXECUTIONS_VIEW])
    assert decide(narrowed, p.EXECUTIONS_VIEW, ACME) is Verdict.ALLOW
    assert decide(narrowed, p.TASKS_CREATE) is Verdict.FORBIDDEN
    widened = who("viewer", permissions=[p.TASKS_CREATE, p.ACCOUNTS_DEPOSIT, "*"])
    assert decide(widened, p.TASKS_CREATE) is Verdict.FORBIDDEN
    assert decide(widened, p.ACCOUNTS_DEPOSIT) is Verdict.FORBIDDEN
    assert decide(who("admin", permissions=[]), p.AGENTS_VIEW) is Verdict.FORBIDDEN


def test_a_family_wildcard_names_every_permission_of_the_family():
    agents_only = who("admin", permissions=["agents.*"])
    assert decide(agents_only, p.AGENTS_MANAGE) is Verdict.ALLOW
    assert decide(agents_only, p.ACCOUNTS_DEPOSIT) is Verdict.FORBIDDEN


def test_several_roles_get_the_widest_scope():
    both = who("viewer", "developer")
    assert scope_of(both, p.TASKS_CREATE) is Scope.TENANT and scope_of(both, p.ACCOUNTS_WITHDRAW) is Scope.ACCOUNT


def test_an_unknown_permission_is_refused_to_everyone():
    assert decide(who("admin"), "tasks.destroy") is Verdict.FORBIDDEN


@pytest.mark.parametrize("claims, field", [
    ({"tenant": "acme", "roles": ["admin"]}, "sub"),
    ({"sub": "ann", "roles": ["admin"]}, "tenant"),
    ({"sub": "ann", "tenant": "a/b", "roles": ["admin"]}, "tenant"),
    ({"sub": "ann", "tenant": "acme", "roles": []}, "roles"),
    ({"sub": "ann", "tenant": "acme", "roles": ["root"]}, "root"),
    ({"sub": "ann", "tenant": "acme", "roles": ["admin", "service"]}, "service"),
    ({"sub": "ann", "tenant": "acme", "roles": ["admin"], "permissions": "all"}, "permissions"),
])
def test_bad_claims_are_refused(claims, field):
    with pytest.raises(ClaimsError, match=field):
        principal_of(claims)


def test_a_principal_account_and_kind():
    user = principal_of({"sub": "ann", "tenant": "acme", "roles": ["developer"], "exp": 5})
    assert (user.account, user.kind, user.expires_at) == ("acme/ann", "user", 5)
    assert principal_of({"sub": "connector", "tenant": "system", "roles": ["service"]}).kind == "service"
