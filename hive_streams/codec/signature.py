"""What an executor signs: its command's record value, exactly as it travels, under a fixed context.

The value is Avro single-object encoding: the schema's fingerprint (so the command's type), then the
body, which holds the command id, the agent id (and the task id, for reports) and every other field.
A signature therefore covers the whole command and no other: it cannot be moved to another command,
another agent or another type, and a replay of the same record is the same command id, which a decider
applies once. The verifier checks the bytes it received, so nothing is re-encoded or canonicalised, and
fields that later schema versions add are covered without a change here. The signature travels in a
header because it cannot be inside the bytes it signs, and so the schemas stay as they are.
"""
from __future__ import annotations

SIGNATURE_HEADER = "hive_signature"  # hex Ed25519 signature of signed_bytes(value)
CONTEXT = b"hive-streams/v1 executor command\n"  # never a prefix of a result digest, which is hex


def signed_bytes(value: bytes) -> bytes:
    return CONTEXT + value
