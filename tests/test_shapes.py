"""The shape check of decoded objects against their type hints (pure)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from hive_streams.codec.shapes import ShapeError, check


@dataclass(frozen=True)
class Inner:
    name: str
    weight: float = 0.0


@dataclass
class Outer:
    inner: Inner
    pair: tuple[str, int] = ("a", 1)
    many: tuple[Inner, ...] = ()
    maybe: int | None = None
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()


def test_what_python_accepts_fits():
    shared = Inner("x", 1)  # an int where a float belongs, as Python reads hints
    check(Outer(shared, ("b", True), (shared, shared), None, {("a", "b"): 2}, frozenset({"t"})), Outer)


@pytest.mark.parametrize("value, where", [
    (Outer(Inner(3)), "$.inner.name: int where str"),
    (Outer(Inner("x", "1.5")), "$.inner.weight: str where float"),
    (Outer(Inner("x"), pair=("b",)), "$.pair: tuple where a tuple of 2"),
    (Outer(Inner("x"), many=(Inner("y"), {"name": "z"})), "$.many[1]: dict where Inner"),
    (Outer(Inner("x"), maybe="3"), "$.maybe: str where int or NoneType"),
    (Outer(Inner("x"), counts={("a", 1): 2}), "$.counts[('a', 1)][1]: int where str"),
    (Outer(Inner("x"), tags=frozenset({1})), "$.tags[0]: int where str"),
    ({"inner": None}, "$: dict where Outer"),
])
def test_a_value_of_another_type_is_named_with_where_it_is(value, where):
    with pytest.raises(ShapeError) as raised:
        check(value, Outer)
    assert str(raised.value) == where + " belongs"
