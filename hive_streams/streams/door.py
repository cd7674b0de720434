"""Checks at a decider's door that the pure domain cannot make on its own: who sent a command (Ed25519,
with the key the domain names for its sender) and what only the deployment knows (the platform's fee).

A door answers a refusal's reason, or nothing: a refused command goes to the dead-letter topic with
the reason in its headers and nothing of it reaches the aggregate; the partition carries on.
"""
from __future__ import annotations

from typing import Callable

from ..codec import header
from ..codec.signature import SIGNATURE_HEADER
from ..domain import commands as c
from ..domain import ledger
from ..kafka.principal import PRINCIPAL_HEADER
from ..kafka.seal import PRODUCER, SealCheck
from .verify import command_signature_valid

CAUSATION = "ce_causationid"
Door = Callable[[object, object, object], str]  # (command, state, message) -> reason, or ""


def open_door(command, state, message) -> str:
    return ""


def seal_door(check: SealCheck) -> Door:
    """Commands no executor signs must carry a seal: a service's (any command), or a producer's (its own tasks)."""
    def door(command, state, message) -> str:
        if isinstance(command, c.EXECUTOR_COMMANDS):
            return ""  # its agent's signature says who sent it (executor_door)
        name = type(command).__name__
        scope = check.scope(message.value, message.headers)
        if scope is None:
            return (f"{name} has no valid seal: only the fabric's services, and producers holding their principal's "
                    f"key, may send it")
        if scope == PRODUCER:
            if not isinstance(command, c.SubmitTask):
                return f"{name} sealed by a producer: a producer may only submit tasks"
            principal = header(message.headers, PRINCIPAL_HEADER)
            if command.requester != principal:
                return f"SubmitTask for {command.requester!r} sealed by the producer of {principal!r}"
        return ""
    return door


def executor_door(signing_key: Callable) -> Door:
    """Executor commands must be signed by the key `signing_key(command, state)` names for their agent."""
    def door(command, state, message) -> str:
        if isinstance(command, c.DOOR_ONLY):
            return f"{type(command).__name__} is made at the door, never taken from a topic"
        if not isinstance(command, c.EXECUTOR_COMMANDS):
            return ""
        name = type(command).__name__
        signature = header(message.headers, SIGNATURE_HEADER)
        if not signature:
            return f"unsigned {name} from agent {command.agent_id}"
        key, why = signing_key(command, state)
        if not key:
            return f"{name}: {why}"
        if not command_signature_valid(key, message.value, signature):
            return f"bad signature: {name} is not signed by the registered key of agent {command.agent_id}"
        return ""
    return door


def ledger_door(max_fee_bps: int) -> Door:
    """Money moves in or out only on the API's authorised path; an escrow is paid only as its task's completion asks."""
    def door(command, state: ledger.LedgerState, message) -> str:
        if isinstance(command, (c.DepositFunds, c.WithdrawFunds)) and not header(message.headers, PRINCIPAL_HEADER):
            return f"{type(command).__name__} names no principal that authorised it (the API's path always does)"
        if isinstance(command, c.ReleaseEscrow):
            problem = ledger.release_problem(command, state, max_fee_bps)
            if problem:
                return problem
            escrow = state.escrows.get(command.escrow_id)
            if escrow is not None and escrow.status == "held" and header(message.headers, CAUSATION) != command.completed_by:
                return f"release of escrow {escrow.escrow_id} was not caused by the completion it names"
        return ""
    return door


def edge_door(from_edge: tuple[type, ...], from_worker: tuple[type, ...],
              problem: Callable[[object], str] = lambda command: "") -> Door:
    """Schedules and triggers: a creation names the principal that made it, and it is the requester; what the
    worker alone sends (slots, matches, callback attempts) names no principal; `problem` says what is wrong
    with a command's content (a creation the API would have refused)."""
    def door(command, state, message) -> str:
        named = header(message.headers, PRINCIPAL_HEADER)
        name = type(command).__name__
        if isinstance(command, from_worker) and named:
            return f"{name} is sent by the worker only, not by {named}"
        if isinstance(command, from_edge):
            if not named:
                return f"{name} names no principal that made it (the API's path always does)"
            requester = getattr(command, "requester", named)
            if requester != named:
                return f"{name} for {requester} was sent by {named}"
        return problem(command)
    return door
