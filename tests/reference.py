"""The codec and the folds as they were before the generated readers and writers (commit c466594): the
oracles the property tests compare the fast paths with. Not used by the package. The task fold follows the
domain's later changes (a queued TaskSubmitted, node events that start a task, outputs carried by TaskCompleted)."""
from __future__ import annotations

import collections.abc
import dataclasses
import io
import struct
import types
import typing
from dataclasses import replace
from functools import lru_cache, singledispatch

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from hive_streams.codec.avro import HEADER_LEN, MAGIC
from hive_streams.domain import events as e
from hive_streams.domain.agent import OFFER_FIELDS, AgentState
from hive_streams.domain.ledger import Escrow, LedgerState
from hive_streams.domain.model import needs
from hive_streams.domain.task import TaskState
from hive_streams.exceptions import CodecError, TruncatedRecordError, UnknownSchemaError


# codec ----------------------------------------------------------------------------------------------------

def encode(registry, obj) -> bytes:
    entry = registry.entry_for(obj)
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(entry.fingerprint)
    try:
        schemaless_writer(buf, entry.schema, to_record(obj))
    except (ValueError, TypeError) as exc:
        raise CodecError(f"cannot encode {entry.name}: {exc}") from None
    return buf.getvalue()


def decode(registry, data: bytes):
    if data is None or len(data) < HEADER_LEN:
        raise TruncatedRecordError("short")
    if data[:2] != MAGIC:
        raise CodecError("not Avro single-object encoding")
    entry = registry.by_fingerprint.get(bytes(data[2:HEADER_LEN]))
    if entry is None:
        raise UnknownSchemaError("unknown schema fingerprint")
    buf = io.BytesIO(data)
    buf.seek(HEADER_LEN)
    try:
        record = schemaless_reader(buf, entry.schema, entry.reader)
    except SchemaResolutionError:
        raise CodecError("does not resolve") from None
    except (EOFError, StopIteration, IndexError, struct.error) as exc:
        raise TruncatedRecordError(f"truncated body ({type(exc).__name__})") from None
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError) as exc:
        raise CodecError(f"malformed body ({exc})") from None
    if buf.tell() != len(data):
        raise CodecError("trailing bytes")
    try:
        return from_record(entry.cls, record)
    except TypeError as exc:
        raise CodecError(f"does not fit ({exc})") from None


def to_record(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: to_record(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_record(v) for v in obj]
    if isinstance(obj, frozenset):
        return sorted(obj)
    if isinstance(obj, collections.abc.Mapping):
        return {k: to_record(v) for k, v in obj.items()}
    return obj


def from_record(cls: type, record: dict):
    converters = _converters(cls)
    return cls(**{name: conv(record[name]) if conv else record[name] for name, conv in converters if name in record})


@lru_cache(maxsize=None)
def _converters(cls: type) -> tuple:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls))


def _converter(hint):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return lambda v: from_record(hint, v)
    if origin is tuple:
        inner = _converter(typing.get_args(hint)[0])
        return (lambda v: tuple(inner(x) for x in v)) if inner else tuple
    if origin is frozenset:
        return frozenset
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = _converter(args[0])
        return (lambda v: None if v is None else inner(v)) if inner else None
    if hint is float:
        return float
    return None


# folds ----------------------------------------------------------------------------------------------------

def _copy_with(state, **changes):
    new = object.__new__(type(state))
    new.__dict__.update(state.__dict__, **changes)
    return new


def evolve_task(state: TaskState, event: e.TaskEvent) -> TaskState:
    if event.seq <= state.seq:
        return state
    return _copy_with(_task(event, state), seq=event.seq, updated_at=event.at)


def _nodes(state: TaskState, node_id: str, status: str) -> dict[str, str]:
    return {**state.node_status, node_id: status}


@singledispatch
def _task(event, state: TaskState) -> TaskState:
    raise TypeError(f"unknown task event {type(event).__name__}")


@_task.register
def _(ev: e.TaskSubmitted, state: TaskState):
    state = replace(state, status="submitted", name=ev.name, requester=ev.requester, nodes=ev.nodes,
                   priority=ev.priority, deadline_at=ev.deadline_at, budget=ev.budget, max_retries=ev.max_retries,
                   requires=ev.requires, hardware=ev.hardware, after=ev.after,
                   retry_backoff_seconds=ev.retry_backoff_seconds, submitted_at=ev.at,
                   node_status={n.id: "pending" for n in ev.nodes}, definition_digest=ev.definition_digest,
                   callback_url=ev.callback_url)
    if ev.queued:
        state = replace(state, status="queued", requires=needs(ev.nodes, ev.requires))
    return state


@_task.register
def _(ev: e.TaskBlocked, state: TaskState):
    return replace(state, status="blocked", waiting_on=ev.waiting_on)


@_task.register
def _(ev: e.DependencyResolved, state: TaskState):
    return replace(state, waiting_on=tuple(t for t in state.waiting_on if t != ev.dependency))


@_task.register
def _(ev: e.TaskValidated, state: TaskState):
    return replace(state, status="queued", requires=ev.requires)


@_task.register
def _(ev: e.TaskRejected, state: TaskState):
    return replace(state, status="rejected", reason=ev.reason)


@_task.register
def _(ev: e.TaskWaiting, state: TaskState):
    return replace(state, waiting_reason=ev.reason)


@_task.register
def _(ev: e.TaskPinned, state: TaskState):
    return replace(state, pinned_to=ev.agent_id)


@_task.register
def _(ev: e.TaskAssigned, state: TaskState):
    return replace(state, status="assigned", agent_id=ev.agent_id, attempt=ev.attempt, waiting_reason="",
                   tried=state.tried + (ev.agent_id,), escrow_id=ev.escrow_id, agent_key=ev.agent_key)


@_task.register(e.ResultRejected)
@_task.register(e.TaskAssignmentDeclined)
@_task.register(e.TaskOutcomeShared)
def _(ev, state: TaskState):
    return state


@_task.register
def _(ev: e.TaskStarted, state: TaskState):
    return replace(state, status="running")


@_task.register
def _(ev: e.NodeStarted, state: TaskState):
    return replace(state, node_status=_nodes(state, ev.node_id, "running"), status=_running(state))


@_task.register
def _(ev: e.NodeProgress, state: TaskState):
    return replace(state, progress={**state.progress, ev.node_id: ev.progress})


@_task.register
def _(ev: e.NodeCompleted, state: TaskState):
    return replace(state, node_status=_nodes(state, ev.node_id, "completed"),
                   outputs={**state.outputs, ev.node_id: ev.output_json}, status=_running(state))


@_task.register
def _(ev: e.NodeFailed, state: TaskState):
    return replace(state, node_status=_nodes(state, ev.node_id, "failed"), status=_running(state))


@_task.register
def _(ev: e.TaskRetryScheduled, state: TaskState):
    nodes = {k: ("completed" if v == "completed" else "pending") for k, v in state.node_status.items()}
    progress = {k: v for k, v in state.progress.items() if nodes.get(k) == "completed"}
    return replace(state, status="queued", agent_id=None, failures=state.failures + 1, not_before=ev.not_before,
                   reason=ev.reason, node_status=nodes, progress=progress, pinned_to=None, escrow_id="", agent_key="")


@_task.register
def _(ev: e.TaskCompleted, state: TaskState):
    return replace(state, status="completed", outputs={o.node_id: o.output_json for o in ev.outputs},
                   node_status={k: "completed" for k in state.node_status})


def _running(state: TaskState) -> str:
    return "running" if state.status == "assigned" else state.status


@_task.register
def _(ev: e.TaskFailed, state: TaskState):
    return replace(state, status="failed", reason=ev.reason)


@_task.register
def _(ev: e.TaskCancelled, state: TaskState):
    return replace(state, status="cancelled", reason=ev.reason)


@_task.register
def _(ev: e.TaskWatched, state: TaskState):
    return replace(state, watchers=state.watchers + (ev.watcher,))


def evolve_agent(state: AgentState, event: e.AgentEvent) -> AgentState:
    if event.seq <= state.seq:
        return state
    return _copy_with(_agent(event, state), seq=event.seq)


@singledispatch
def _agent(event, state: AgentState) -> AgentState:
    raise TypeError(f"unknown agent event {type(event).__name__}")


@_agent.register
def _(ev: e.AgentRegistered, state: AgentState):
    return replace(state, **{name: getattr(ev, name) for name in OFFER_FIELDS}, last_seen=ev.at)


@_agent.register
def _(ev: e.AgentHeartbeat, state: AgentState):
    return replace(state, last_seen=ev.at, cpu_percent=ev.cpu_percent, memory_percent=ev.memory_percent,
                   gpu_percent=ev.gpu_percent, gpu_memory_percent=ev.gpu_memory_percent,
                   gpu_temperature_c=ev.gpu_temperature_c, tokens_per_second=ev.tokens_per_second,
                   response_seconds=ev.response_seconds)


@_agent.register
def _(ev: e.AgentStatusChanged, state: AgentState):
    if ev.status == "online":
        return replace(state, status="online", last_seen=ev.at)
    return replace(state, status=ev.status, holding=state.holding if ev.holds_kept else frozenset())


@_agent.register
def _(ev: e.SlotReserved, state: AgentState):
    return replace(state, holding=state.holding | {ev.task_id})


@_agent.register
def _(ev: e.SlotRefused, state: AgentState):
    return state


@_agent.register
def _(ev: e.SlotReleased, state: AgentState):
    return replace(state, holding=state.holding - {ev.task_id})


def evolve_ledger(state: LedgerState, event: e.LedgerEvent) -> LedgerState:
    if event.seq <= state.seq:
        return state
    state = _post(state, getattr(event, "legs", ()))
    return replace(_ledger(event, state), seq=event.seq)


def _post(state: LedgerState, legs) -> LedgerState:
    if not legs:
        return state
    available, held = dict(state.available), dict(state.held)
    for leg in legs:
        bucket = available if leg.bucket == "available" else held
        bucket[leg.account] = bucket.get(leg.account, 0) + leg.delta
    return replace(state, available=available, held=held)


def _escrow(state: LedgerState, escrow_id: str, **changes) -> LedgerState:
    return replace(state, escrows={**state.escrows, escrow_id: replace(state.escrows[escrow_id], **changes)})


@singledispatch
def _ledger(event, state: LedgerState) -> LedgerState:
    return state


@_ledger.register
def _(ev: e.EscrowHeld, state: LedgerState):
    escrow = Escrow(ev.escrow_id, ev.task_id, ev.requester, ev.agent_id, ev.amount)
    return replace(state, escrows={**state.escrows, ev.escrow_id: escrow})


@_ledger.register
def _(ev: e.EscrowReleased, state: LedgerState):
    return _escrow(state, ev.escrow_id, status="released")


@_ledger.register
def _(ev: e.EscrowRefunded, state: LedgerState):
    return _escrow(state, ev.escrow_id, status="refunded")
