"""Large node outputs by reference: what a task's event carries for an output kept on the blob topic.

An output whose JSON is over the executor's inline limit is written, as chunks, to `<prefix>.blobs`
keyed by its digest; the node's recorded output is then a reference of this shape:

    {"$blob": {"digest": "sha256:<hex>", "size": <bytes>, "signature": "<hex>", "partition": p, "offset": o,
               "key": "<hex>"}}

`signature` is the executor's Ed25519 signature of `digest`; `partition` and `offset` locate the first
chunk; `key` is the AES-256-GCM key its chunks are encrypted with. The reference travels only in the
task's events (and, sealed, in a retry's assignment), so whoever may read the task may read the blob,
and an executor reading the blob topic sees other tasks' outputs as ciphertext only. A node's own
output never has this shape inline: the executor moves any such output to a blob.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

MARK = "$blob"
PREFIX = "sha256:"


@dataclass(frozen=True)
class BlobRef:
    digest: str
    size: int
    signature: str
    partition: int
    offset: int
    key: str = ""  # hex AES-256-GCM key of the chunks; "" for a blob written in clear

    def to_json(self) -> str:
        return json.dumps({MARK: asdict(self)}, sort_keys=True)


def digest_of(data: bytes) -> str:
    return PREFIX + hashlib.sha256(data).hexdigest()


def looks_like_reference(output: object) -> bool:
    """Whether an output has a reference's shape (a node's output that does is moved to a blob)."""
    return isinstance(output, dict) and MARK in output


def reference_of(output_json: str) -> BlobRef | None:
    """The reference an output carries, or None when the output is inline (or not a well-formed reference)."""
    if MARK not in output_json[:16]:
        return None
    try:
        body = json.loads(output_json)[MARK]
        ref = BlobRef(str(body["digest"]), int(body["size"]), str(body["signature"]), int(body["partition"]),
                      int(body["offset"]), str(body.get("key", "")))
    except (ValueError, TypeError, KeyError):
        return None
    if not ref.digest.startswith(PREFIX) or ref.size < 0 or ref.offset < 0 or ref.partition < 0:
        return None
    return ref
