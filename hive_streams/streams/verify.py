"""Result verification at the task decider's door: the domain's checks, then Ed25519 signatures.

A report that fails becomes a RejectResult command, which the pure domain turns into no
payment, a reputation penalty and a retry elsewhere. Digests are checked for every agent, keyed
or not; only the signature needs a key, and priced work is never accepted from an agent without one.
"""
from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..domain import commands as c
from ..domain.task import ACTIVE, TaskState, result_problem


def signature_valid(public_key_hex: str, digest: str, signature_hex: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(bytes.fromhex(signature_hex), digest.encode())
        return True
    except (InvalidSignature, ValueError):
        return False


def screen(command, state: TaskState):
    """The command to decide on: the report itself, or its rejection."""
    if not isinstance(command, (c.ReportNodeCompleted, c.ReportTaskResult)) or state.status not in ACTIVE:
        return command
    if command.agent_id != state.agent_id:
        return _reject(command, "result from an agent that was not assigned the task")
    if command.attempt != state.attempt:
        return command  # a stale attempt: the domain ignores it
    problem = result_problem(command, state)
    if problem:
        return _reject(command, problem)
    if state.agent_key and not signature_valid(state.agent_key, command.digest, command.signature):
        return _reject(command, "bad signature")
    return command


def _reject(command, reason: str) -> c.RejectResult:
    return c.RejectResult(command.task_id, f"{command.command_id}:rejected", command.at, command.agent_id,
                          command.attempt, reason)
