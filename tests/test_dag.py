import pytest
from hypothesis import given, strategies as st

from hive_streams.domain.dag import InvalidGraph, ready_nodes, topological_order
from hive_streams.domain.model import NodeSpec


def node(i, deps=()):
    return NodeSpec(i, "echo", "{}", tuple(deps))


def test_order_respects_dependencies():
    nodes = (node("c", ["b"]), node("a"), node("b", ["a"]))
    assert topological_order(nodes) == ["a", "b", "c"]


def test_cycle_is_reported_with_its_path():
    with pytest.raises(InvalidGraph, match="cycle: a -> b -> c -> a"):
        topological_order((node("a", ["b"]), node("b", ["c"]), node("c", ["a"])))


def test_self_dependency_and_empty():
    with pytest.raises(InvalidGraph, match="itself"):
        topological_order((node("a", ["a"]),))
    with pytest.raises(InvalidGraph):
        topological_order(())


def test_ready_nodes():
    nodes = (node("a"), node("b", ["a"]), node("c"))
    assert ready_nodes(nodes, set(), set()) == ["a", "c"]
    assert ready_nodes(nodes, {"a"}, {"c"}) == ["b"]


@given(st.integers(1, 30), st.data())
def test_any_acyclic_graph_gets_a_valid_order(n, data):
    nodes = []
    for i in range(n):
        deps = data.draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        nodes.append(node(f"n{i}", [f"n{d}" for d in deps]))
    shuffled = tuple(data.draw(st.permutations(nodes)))
    order = topological_order(shuffled)
    position = {node_id: k for k, node_id in enumerate(order)}
    assert sorted(order) == sorted(x.id for x in nodes)
    assert all(position[d] < position[x.id] for x in nodes for d in x.depends_on)
