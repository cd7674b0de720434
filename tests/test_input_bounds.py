"""The bounds every body keeps, and the definition's numbers against what their Avro fields carry."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hive_streams.api.body import json_object, parse_definition
from hive_streams.api.errors import RequestError
from hive_streams.api.values import MAX_ALIASES, MAX_DEPTH, checked
from hive_streams.domain.definition import HARDWARE, MAX_DEADLINE_SECONDS, NODE_FIELDS, REQUIREMENT, TASK_FIELDS, \
    DefinitionError, parse_task
from hive_streams.domain.fields import DOUBLE_MAX, INT_MAX, INT_MIN, LONG_MAX, LONG_MIN, Field, FieldError
from hive_streams.settings import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas"
ECHO = {"name": "t", "nodes": [{"id": "a", "kind": "echo"}]}
# each numeric field of a definition, and the Avro field that carries it (type file, field)
CARRIED_BY = [
    (TASK_FIELDS["priority"], "commands/SubmitTask", "priority"),
    (TASK_FIELDS["max_retries"], "commands/SubmitTask", "max_retries"),
    (TASK_FIELDS["budget"], "commands/SubmitTask", "budget"),
    (TASK_FIELDS["retry_backoff_seconds"], "commands/SubmitTask", "retry_backoff_seconds"),
    (NODE_FIELDS["timeout_seconds"], "types/NodeSpec", "timeout_seconds"),
    (HARDWARE.properties["vram_gb"], "types/Hardware", "vram_gb"),
    (HARDWARE.properties["cpu_cores"], "types/Hardware", "cpu_cores"),
    (HARDWARE.properties["ram_gb"], "types/Hardware", "ram_gb"),
    (REQUIREMENT.properties["proficiency"], "types/Requirement", "proficiency"),
]
AVRO_RANGE = {"int": (INT_MIN, INT_MAX), "long": (LONG_MIN, LONG_MAX), "double": (-DOUBLE_MAX, DOUBLE_MAX)}


def avro_type(name: str, field: str) -> str:
    schema = json.loads((SCHEMAS / f"{name}.avsc").read_text())
    kind = next(f["type"] for f in schema["fields"] if f["name"] == field)
    return next(t for t in kind if t != "null") if isinstance(kind, list) else kind


@pytest.mark.parametrize("spec, name, field", CARRIED_BY, ids=[f"{n}.{f}" for _, n, f in CARRIED_BY])
def test_every_number_of_a_definition_fits_its_avro_field(spec, name, field):
    low, high = AVRO_RANGE[avro_type(name, field)]
    if "integer" in spec.kinds:
        assert avro_type(name, field) in ("int", "long")
    assert low <= (spec.minimum if spec.minimum is not None else LONG_MIN) and \
        (spec.maximum if spec.maximum is not None else LONG_MAX) <= high
    with pytest.raises(FieldError):
        spec.check(high + 1 if "integer" in spec.kinds else math.inf, field)


def test_the_longest_deadline_fits_deadline_at():
    assert avro_type("commands/SubmitTask", "deadline_at") == "long"
    spec = parse_task({**ECHO, "deadline_seconds": MAX_DEADLINE_SECONDS}, now_ms=4_102_444_800_000)  # in 2100
    assert spec.deadline_at <= LONG_MAX


@pytest.mark.parametrize("over, path", [
    ({"priority": 2 ** 63}, "priority"),
    ({"priority": -(2 ** 63) - 1}, "priority"),
    ({"deadline_seconds": math.inf}, "deadline_seconds"),
    ({"deadline_seconds": MAX_DEADLINE_SECONDS + 1}, "deadline_seconds"),
    ({"budget": math.nan}, "budget"),
    ({"budget": 10 ** 400}, "budget"),
    ({"retry_backoff_seconds": math.nan}, "retry_backoff_seconds"),
    ({"hardware": {"cpu_cores": 2 ** 64}}, "hardware.cpu_cores"),
    ({"hardware": {"ram_gb": -math.inf}}, "hardware.ram_gb"),
    ({"requires": [{"name": "gpu", "proficiency": math.nan}]}, "requires[0].proficiency"),
    ({"nodes": [{"id": "a", "kind": "echo", "timeout_seconds": math.nan}]}, "nodes[0].timeout_seconds"),
    ({"nodes": [{"id": "a", "kind": "sleep", "seconds": math.inf}]}, "nodes[0].seconds"),
])
def test_numbers_out_of_range_are_refused_by_name(over, path):
    with pytest.raises(DefinitionError) as refused:
        parse_task({**ECHO, **over}, now_ms=0)
    assert refused.value.path == path


def refusal(body: bytes, content_type: str = "application/json") -> tuple[int, str]:
    with pytest.raises(RequestError) as refused:
        parse_definition(body, content_type)
    return refused.value.status, refused.value.field


@pytest.mark.parametrize("body, answer", [
    (b"[" * 20_000 + b"]" * 20_000, (400, "$")),
    (b'{"budget": NaN}', (422, "budget")),
    (b'{"deadline_seconds": Infinity}', (422, "deadline_seconds")),
    (b'{"x": -Infinity}', (422, "x")),
    (b'{"nodes": [{"p": 1e999}]}', (422, "nodes[0].p")),
    (b'{"priority": 9223372036854775808}', (422, "priority")),
    (b'[{"name": "a"}, {"name": "b\\u0000"}]', (422, "$[1].name")),
    (b'{"name": "\\udfff"}', (422, "name")),
])
def test_json_bodies_keep_their_bounds(body, answer):
    assert refusal(body) == answer


def test_nesting_is_bounded_at_64_levels():
    assert checked(json.loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH))
    assert refusal(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)) == (400, "$" + "[0]" * MAX_DEPTH)
    assert refusal(b"a: " + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "application/yaml") == (400, "$")


def laughs(levels: int) -> bytes:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines).encode()


def test_yaml_aliases_are_bounded_before_they_expand():
    assert refusal(laughs(9), "application/yaml") == (400, "$")  # 9^9 values, refused at ~9^6
    assert refusal(b"a: &a [*a]", "application/yaml") == (400, "$")  # an alias inside its own anchor
    many = b"x: &x 1\nl: [" + b",".join([b"*x"] * (MAX_ALIASES + 1)) + b"]"
    assert refusal(many, "application/yaml") == (400, "$")
    assert parse_definition(b"n: &n {id: a, kind: echo}\nnodes: [*n, *n]", "application/yaml")["nodes"][1] == \
        {"id": "a", "kind": "echo"}  # a few aliases are still YAML


def test_yaml_special_floats_are_refused():
    assert refusal(b"budget: .nan", "application/yaml") == (422, "budget")
    assert refusal(b"budget: -.inf", "application/yaml") == (422, "budget")


def test_small_json_objects_keep_the_same_bounds():
    with pytest.raises(RequestError) as refused:
        json_object(b'{"amount": NaN}')
    assert (refused.value.status, refused.value.field) == (422, "amount")


def test_a_declared_object_field_checks_required_unknown_and_nested_fields():
    spec = Field(("object",), closed=True, properties={
        "amount": Field(("number",), 0, 10, exclusive_minimum=True, required=True),
        "tags": Field(("array",), items=Field(("string",), max_length=3))})
    assert spec.validate({"amount": 1, "tags": ["a"]})
    for value, path in [({}, "amount"), ({"amount": 0}, "amount"), ({"amount": True}, "amount"),
                        ({"amount": 1, "tags": ["abcd"]}, "tags[0]"), ({"amount": 1, "x": 1}, "x")]:
        with pytest.raises(FieldError) as refused:
            spec.validate(value)
        assert refused.value.path == path
