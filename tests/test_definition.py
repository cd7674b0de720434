import pytest

from hive_streams.domain.definition import DefinitionError, parse_task, requested_id


def defn(**over):
    base = {"name": "t", "nodes": [{"id": "a", "kind": "echo"}, {"id": "b", "kind": "shell", "command": "true", "depends_on": ["a"]}]}
    return {**base, **over}


def error_of(raw) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        parse_task(raw, now_ms=1_000)
    return info.value


def test_parses_a_dag():
    spec = parse_task(defn(priority=3, deadline_seconds=5, requires=["gpu", {"name": "devops", "proficiency": 0.9}]), 1_000)
    assert [n.id for n in spec.nodes] == ["a", "b"]
    assert spec.nodes[1].depends_on == ("a",)
    assert spec.deadline_at == 6_000
    assert spec.priority == 3
    assert [(r.name, r.proficiency) for r in spec.requires] == [("gpu", 0.0), ("devops", 0.9)]


@pytest.mark.parametrize("raw, path", [
    ([], "$"),
    ({"nodes": []}, "name"),
    (defn(nodes=[]), "nodes"),
    (defn(nodes=[{"kind": "echo"}]), "nodes[0].id"),
    (defn(nodes=[{"id": "a"}]), "nodes[0].kind"),
    (defn(nodes=[{"id": "a", "kind": "teleport"}]), "nodes[0].kind"),
    (defn(nodes=[{"id": "a", "kind": "shell"}]), "nodes[0].command"),
    (defn(nodes=[{"id": "a", "kind": "sleep", "seconds": "long"}]), "nodes[0].seconds"),
    (defn(nodes=[{"id": "a", "kind": "echo", "depends_on": [1]}]), "nodes[0].depends_on[0]"),
    (defn(priority="high"), "priority"),
    (defn(priority=True), "priority"),
    (defn(prioriti=1), "prioriti"),
    (defn(requires=[{"name": "gpu", "proficiency": 2}]), "requires[0].proficiency"),
    (defn(deadline_seconds=0), "deadline_seconds"),
])
def test_wrong_fields_are_named(raw, path):
    assert error_of(raw).path == path


def test_graph_errors_have_reasons():
    cycle = defn(nodes=[{"id": "a", "kind": "echo", "depends_on": ["b"]}, {"id": "b", "kind": "echo", "depends_on": ["a"]}])
    assert "cycle" in error_of(cycle).message
    dup = defn(nodes=[{"id": "a", "kind": "echo"}, {"id": "a", "kind": "echo"}])
    assert "duplicate node id 'a'" in error_of(dup).message
    unknown = defn(nodes=[{"id": "a", "kind": "echo", "depends_on": ["zz"]}])
    assert "unknown node 'zz'" in error_of(unknown).message


def test_requested_id():
    assert requested_id({"id": "job-1"}) == "job-1"
    assert requested_id({}) is None
    with pytest.raises(DefinitionError):
        requested_id({"id": "bad id/"})


@pytest.mark.parametrize("task_id", ["a" * 64, "é1_-.", "J.2", "٣"])
def test_a_requested_id_is_letters_digits_and_three_marks(task_id):
    assert requested_id({"id": task_id}) == task_id


@pytest.mark.parametrize("task_id", ["", "a" * 65, "a\n", "a b", "a/b", "a:b", "ä\x00", 7, None])
def test_any_other_requested_id_is_refused(task_id):
    with pytest.raises(DefinitionError) as refused:
        requested_id({"id": task_id})
    assert refused.value.path == "id"


def test_a_budget_of_minus_zero_is_a_budget_of_zero():
    budget = parse_task(defn(budget=-0.0), 1_000).budget
    assert budget == 0.0 and repr(budget) == "0.0"
