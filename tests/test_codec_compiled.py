"""The generated readers, writers and record converters against the generic path they replace (tests/reference.py):
the same bytes, the same objects of the same types, the same errors, for every event, command and state type."""
import collections.abc
import dataclasses
import inspect
import io
import json
import typing

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings, strategies as st

from hive_streams.codec import compiled, default_codec
from hive_streams.codec.avro import HEADER_LEN, MAGIC, from_record, to_record
from hive_streams.codec.history import sample
from hive_streams.codec.registry import fingerprint_of, released
from hive_streams.domain import agent, commands as c, events as e, ledger, model, task
from hive_streams.domain.evolving import quick_init
from hive_streams.domain.ledger import Escrow, LedgerState
from hive_streams.domain.model import NodeSpec
from hive_streams.exceptions import CodecError

from . import reference

codec = default_codec()
registry = codec.registry
CLASSES = sorted(registry.by_class, key=lambda cls: cls.__name__)
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def values(hint, depth=0, short=False):
    """Values of a domain field: the types the hint names, plus ints where a float is expected (JSON gives
    those), which only the generic path accepts."""
    origin = typing.get_origin(hint)
    if hint is str:
        return st.text(max_size=4) if short else st.one_of(st.text(max_size=12), st.text(min_size=60, max_size=150))
    if hint is int:
        return st.one_of(st.integers(-70, 70), INT64)
    if hint is float:
        return st.one_of(st.floats(allow_nan=False, width=64), st.integers(-5, 5))
    if hint is bool:
        return st.booleans()
    if dataclasses.is_dataclass(hint):
        return instances(hint, depth + 1, short)
    if origin is tuple:
        return st.lists(values(typing.get_args(hint)[0], depth, short), max_size=3).map(tuple)
    if origin is frozenset:
        return st.frozensets(values(typing.get_args(hint)[0], depth, short), max_size=3)
    if origin in (dict, collections.abc.Mapping):
        return st.dictionaries(st.text(max_size=6), values(typing.get_args(hint)[1], depth, short), max_size=3)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if args:
        return st.one_of(st.none(), values(args[0], depth, short))
    raise AssertionError(f"no strategy for {hint}")


def instances(cls, depth=0, short=False):
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: values(hints[f.name], depth, short) for f in dataclasses.fields(cls)})


def short_instances(cls):
    return instances(cls, short=True)


EVERY_TYPE = pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)


def outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except Exception as exc:  # the same exception class is part of "the same result"
        return "raised", type(exc)


def same(new, old) -> bool:
    """Equal, with the same types all the way down (5 and 5.0 differ, a list and a tuple differ)."""
    return repr(new) == repr(old) and new == old


def escrows_built(state):
    """The old decoder left the ledger's escrows as dicts although the domain reads them as Escrow objects."""
    if isinstance(state, LedgerState):
        return dataclasses.replace(state, escrows={k: Escrow(**v) for k, v in state.escrows.items()})
    return state


def test_every_current_schema_has_a_generated_reader_and_writer():
    for entry in registry.by_name.values():
        assert compiled.reader(entry.schema, entry.cls) is not None, entry.name
        assert compiled.writer(entry.schema, entry.cls) is not None, entry.name


@EVERY_TYPE
@SETTINGS
@given(data=st.data())
def test_the_generated_paths_give_what_the_generic_path_gave(cls, data):
    obj = data.draw(instances(cls))
    # encode: the same bytes, or the same error (ints in float fields, out-of-range longs: the generic path)
    new, old = outcome(codec.encode, obj), outcome(reference.encode, registry, obj)
    assert new == old
    # records as to_record and from_record made them, and older records missing fields
    record = reference.to_record(obj)
    assert same(to_record(obj), record)
    assert same(from_record(cls, record), escrows_built(reference.from_record(cls, record)))
    dropped = data.draw(st.sets(st.sampled_from(sorted(record)), max_size=3))
    older = {k: v for k, v in record.items() if k not in dropped}
    built, old_built = outcome(from_record, cls, older), outcome(reference.from_record, cls, older)
    assert built[0] == old_built[0]
    assert same(built[1], escrows_built(old_built[1])) if built[0] == "ok" else built[1] == old_built[1]
    if old[0] != "ok":
        return
    # decode: the same object, of the same types, equal to what was encoded
    encoded = old[1]
    decoded = codec.decode(encoded)
    assert same(decoded, escrows_built(reference.decode(registry, encoded)))
    assert decoded == obj and type(decoded) is type(obj)
    # a record cut anywhere raises what it raised
    cut = data.draw(st.integers(0, len(encoded) - 1))
    assert outcome(codec.decode, encoded[:cut]) == outcome(reference.decode, registry, encoded[:cut])


@pytest.mark.parametrize("defaults", [True, False])
def test_records_of_released_versions_decode_as_they_did(defaults):
    for _, path in released(registry.history_dir):
        writer = parse_schema(json.loads(path.read_text()))
        body = io.BytesIO()
        schemaless_writer(body, writer, sample(writer, defaults))
        data = MAGIC + fingerprint_of(writer) + body.getvalue()
        assert same(codec.decode(data), escrows_built(reference.decode(registry, data))), path.name


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(registry.by_fingerprint)), st.binary(max_size=60))
def test_garbage_after_a_known_header_is_a_codec_error_or_what_it_was(fingerprint, body):
    data = b"\xc3\x01" + fingerprint + body
    new, old = outcome(codec.decode, data), outcome(reference.decode, registry, data)
    if new[0] == "raised":
        assert issubclass(new[1], CodecError) and old[0] == "raised" and issubclass(old[1], CodecError)
    else:
        assert old[0] == "ok" and same(new[1], escrows_built(old[1]))


def test_long_strings_and_arrays_round_trip():
    nodes = tuple(NodeSpec(f"n{i}", "echo", "x" * 5000) for i in range(200))
    submitted = e.TaskSubmitted("t" * 4096, 1, -(1 << 63), "é" * 3000, "r", nodes, priority=(1 << 63) - 1)
    data = codec.encode(submitted)
    assert data == reference.encode(registry, submitted)
    assert same(codec.decode(data), reference.decode(registry, data))


def test_equal_small_nested_values_are_one_object_and_the_table_stays_small():
    def nodes(params):
        return codec.decode(codec.encode(e.TaskAssigned("t", 2, 5, "a", 1, (NodeSpec("n", "echo", params),)))).nodes[0]
    assert nodes("{}") is nodes("{}") and nodes("{}") is not nodes("{ }")
    big = "x" * compiled.SHARED_BYTES
    assert nodes(big) == nodes(big) and nodes(big) is not nodes(big)
    for i in range(compiled.SHARED_MAX + 10):
        nodes(str(i))
    assert all(len(table) <= compiled.SHARED_MAX for table in compiled.SHARED.values())


def test_decode_accepts_bytearray_and_memoryview():
    data = codec.encode(e.TaskStarted("t1", 3, 1_700_000_000_000, "a1", 1))
    assert codec.decode(bytearray(data)) == codec.decode(memoryview(data)) == codec.decode(data)


def test_trailing_bytes_and_unknown_schemas_are_still_refused():
    data = codec.encode(e.TaskStarted("t1", 3, 1_700_000_000_000, "a1", 1))
    for bad in (data + b"\x00", data[:2] + b"\xff" * 8 + data[HEADER_LEN:], b"\x00" + data[1:], data[:5], None):
        assert outcome(codec.decode, bad) == outcome(reference.decode, registry, bad)


def test_a_missing_required_field_says_what_it_said():
    with pytest.raises(TypeError) as new:
        from_record(task.TaskState, {"seq": 1})
    with pytest.raises(TypeError) as old:
        reference.from_record(task.TaskState, {"seq": 1})
    assert str(new.value) == str(old.value) == "TaskState.__init__() missing 1 required positional argument: 'task_id'"


def test_the_ledger_state_now_round_trips_with_its_escrows():
    state = LedgerState(seq=2, available={"a": 5}, escrows={"x": Escrow("x", "t", "a", "g", 5)})
    assert codec.decode(codec.encode(state)) == state
    assert from_record(LedgerState, to_record(state)) == state


def _made_here(module) -> list[type]:
    return [v for v in vars(module).values()
            if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == module.__name__]


DECIDED = _made_here(e) + _made_here(c) + _made_here(model)  # made by every decision: quick_init_all gives them it


@pytest.mark.parametrize("cls", DECIDED, ids=lambda t: f"{t.__module__.rsplit('.', 1)[-1]}.{t.__name__}")
def test_every_event_command_and_value_is_made_by_quick_init_as_by_its_dataclass(cls):
    assert cls.__init__.__code__.co_filename == "<string>" and "_set" in cls.__init__.__code__.co_names
    fields = [(f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory))
              for f in dataclasses.fields(cls)]
    plain = dataclasses.make_dataclass(cls.__name__, fields, frozen=True, namespace={"__module__": cls.__module__})
    assert str(inspect.signature(cls)) == str(inspect.signature(plain))
    required = {f.name: f"<{f.name}>" for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    made, reference_made = cls(**required), plain(**required)
    assert vars(made) == vars(reference_made) and list(vars(made)) == list(vars(reference_made))
    with pytest.raises(TypeError):
        cls(**required, not_a_field=1)


@pytest.mark.parametrize("cls", [task.TaskState, agent.AgentState, ledger.LedgerState])
def test_quick_init_keeps_the_dataclass_signature_and_objects(cls):
    fields = [(f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory))
              for f in dataclasses.fields(cls)]
    plain = dataclasses.make_dataclass(cls.__name__, fields, frozen=True, namespace={"__module__": cls.__module__})
    assert str(inspect.signature(cls)) == str(inspect.signature(plain))
    ids = {"task_id": "t", "agent_id": "a"}
    args = [ids[f.name] for f in dataclasses.fields(cls) if f.name in ids]
    made, reference_made = cls(*args), plain(*args)
    assert vars(made) == vars(reference_made) and list(vars(made)) == list(vars(reference_made))


def test_quick_init_leaves_alone_what_it_cannot_copy():
    @dataclasses.dataclass(frozen=True)
    class Checked:
        a: int

        def __post_init__(self):
            pass

    @dataclasses.dataclass(frozen=True)
    class Derived:
        a: int
        b: dataclasses.InitVar[int] = 0

    for cls in (Checked, Derived):
        init = cls.__init__
        assert quick_init(cls).__init__ is init


FOLDS = {e.TaskEvent: (task.TaskState, task.evolve, reference.evolve_task),
         e.AgentEvent: (agent.AgentState, agent.evolve, reference.evolve_agent),
         e.LedgerEvent: (ledger.LedgerState, ledger.evolve, reference.evolve_ledger)}


@pytest.mark.parametrize("event_type", e.TASK_EVENTS + e.AGENT_EVENTS + e.LEDGER_EVENTS, ids=lambda t: t.__name__)
@SETTINGS
@given(data=st.data())
def test_evolve_is_the_old_fold(event_type, data):
    state_type, evolve, old_evolve = next(fold for base, fold in FOLDS.items() if issubclass(event_type, base))
    state = data.draw(short_instances(state_type))
    event = data.draw(short_instances(event_type))
    others = data.draw(st.lists(st.sampled_from(event_type.__mro__[1].__subclasses__()).flatmap(short_instances),
                                max_size=3))
    new = old = state
    for i, ev in enumerate([event, *others, event]):  # the last one again, at a seq already applied or not
        ev = dataclasses.replace(ev, seq=state.seq + data.draw(st.sampled_from([i + 1, i, 0])))
        new_outcome, old_outcome = outcome(evolve, new, ev), outcome(old_evolve, old, ev)
        assert new_outcome[0] == old_outcome[0]
        if new_outcome[0] == "raised":
            assert new_outcome[1] == old_outcome[1]
            return
        new, old = new_outcome[1], old_outcome[1]
        assert same(new, old) and type(new) is type(old)
