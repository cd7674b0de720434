"""An executor's inbox: the events it must act on, readable by it alone.

Executors share one Kafka role, and Kafka's ACLs grant whole topics, so the broker cannot give an
agent its own tasks and nothing else. The worker therefore copies each event an executor acts on
(its assignments and the stops of its tasks) to the inbox topic, keyed by agent id, sealed to that
agent's registered Ed25519 key (libsodium's sealed box over the key's X25519 form). Executors read
the inbox only, never the task events: another agent's records there are ciphertext to them.
"""
from __future__ import annotations

from functools import lru_cache

from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519, crypto_sign_ed25519_sk_to_curve25519
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from ..exceptions import CodecError


@lru_cache(maxsize=4096)
def _box_for(agent_key: str) -> SealedBox:
    return SealedBox(PublicKey(crypto_sign_ed25519_pk_to_curve25519(bytes.fromhex(agent_key))))


def seal_to(agent_key: str, value: bytes) -> bytes:
    """`value` readable only by the holder of the Ed25519 key whose public half is `agent_key` (hex)."""
    try:
        return _box_for(agent_key).encrypt(value)
    except (ValueError, TypeError) as exc:
        raise CodecError(f"cannot seal to agent key {agent_key[:16]!r}: {exc}") from None


class InboxOpener:
    """Opens what was sealed to one Ed25519 key, given its 32-byte seed and public key."""

    def __init__(self, seed: bytes, public_key: bytes):
        self._box = SealedBox(PrivateKey(crypto_sign_ed25519_sk_to_curve25519(seed + public_key)))

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._box.decrypt(sealed)
        except CryptoError:
            raise CodecError("not sealed to this agent's key") from None
