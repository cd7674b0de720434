"""Task ids are scoped by tenant: the aggregate id is `<tenant>:<id>`. Pure.

Two tenants may both name a task `nightly` (`acme:nightly`, `globex:nightly`). `:` separates because
neither a tenant name nor a task id may contain it, a URL path segment carries it as it is
(`/api/tasks/acme:nightly`), and the Kafka key, the aggregate id, is then unique across tenants.
A task of no tenant (a principal without one) keeps its bare id.
"""
from __future__ import annotations

SEPARATOR = ":"


def task_tenant(task_id: str) -> str:
    """The tenant in `<tenant>:<id>`; "" for a bare id."""
    tenant, sep, _ = task_id.partition(SEPARATOR)
    return tenant if sep else ""


def local_id(task_id: str) -> str:
    """The id its tenant chose: `nightly` of `acme:nightly`."""
    return task_id.partition(SEPARATOR)[2] or task_id


def qualified(tenant: str, task_id: str) -> str:
    """The aggregate id of the task `task_id` names within `tenant`: a bare id joins the tenant, a
    qualified one stays as it is (whichever tenant it names)."""
    if SEPARATOR in task_id or not tenant:
        return task_id
    return f"{tenant}{SEPARATOR}{task_id}"


def account_tenant(account: str) -> str:
    """The tenant in an account `<tenant>/<sub>`; "" for accounts of no tenant (agents, the platform)."""
    tenant, slash, _ = account.partition("/")
    return tenant if slash else ""
