import pytest

from hive_streams.domain.definition import DefinitionError, definition_digest, in_tenant, parse_task
from hive_streams.domain.tenancy import account_tenant, local_id, qualified, task_tenant

ECHO = {"name": "n", "nodes": [{"id": "a", "kind": "echo"}]}


def test_task_ids_are_scoped_by_tenant():
    assert qualified("acme", "nightly") == "acme:nightly" != qualified("globex", "nightly")
    assert qualified("acme", "globex:nightly") == "globex:nightly"  # already qualified: unchanged
    assert qualified("", "nightly") == "nightly"
    assert task_tenant("acme:nightly") == "acme" and task_tenant("nightly") == ""
    assert local_id("acme:nightly") == "nightly" and local_id("nightly") == "nightly"
    assert account_tenant("acme/alice") == "acme" and account_tenant("agent-1") == ""


def test_dependencies_resolve_within_the_tenant():
    spec = in_tenant(parse_task({**ECHO, "after": ["extract", "acme:load"]}, 0), "acme")
    assert spec.after == ("acme:extract", "acme:load")
    with pytest.raises(DefinitionError) as refused:
        in_tenant(parse_task({**ECHO, "after": ["extract", "globex:load"]}, 0), "acme")
    assert refused.value.path == "after[1]"


def test_the_digest_of_a_definition_ignores_key_order_only():
    assert definition_digest({"name": "n", "priority": 1}) == definition_digest({"priority": 1, "name": "n"})
    assert definition_digest({"name": "n", "priority": 1}) != definition_digest({"name": "n", "priority": 2})
