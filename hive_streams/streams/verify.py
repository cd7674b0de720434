"""Result verification at the task decider's door: Ed25519 signatures over the domain's digests.

A report that fails becomes a RejectResult command, which the pure domain turns into no
payment, a reputation penalty and a retry elsewhere.
"""
from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..domain import commands as c
from ..domain.model import node_digest, result_digest
from ..domain.task import ACTIVE, TaskState


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
    if command.attempt != state.attempt or not state.agent_key:
        return command  # stale attempts are ignored by the domain; unkeyed agents sign nothing
    if isinstance(command, c.ReportNodeCompleted):
        expected = node_digest(command.task_id, command.attempt, command.node_id, command.output_json)
    else:
        expected = result_digest(command.task_id, command.attempt, dict(state.outputs))
    if command.digest != expected:
        return _reject(command, "output digest does not match the output")
    if not signature_valid(state.agent_key, command.digest, command.signature):
        return _reject(command, "bad signature")
    return command


def _reject(command, reason: str) -> c.RejectResult:
    return c.RejectResult(command.task_id, f"{command.command_id}:rejected", command.at, command.agent_id,
                          command.attempt, reason)
