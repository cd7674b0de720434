"""The executor's Ed25519 identity: a key kept on disk, its public half in the agent's offer.

The key signs result digests (in the reports) and every command the executor sends (in a header)."""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..codec.inbox import InboxOpener
from ..codec.signature import SIGNATURE_HEADER, signed_bytes
from ..kafka import CommandSender, command_topic


class Signer:
    def __init__(self, key: Ed25519PrivateKey, created: bool = False):
        self.key = key
        self.created = created  # made just now: no earlier process can have registered it
        self.public_key = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()

    def inbox_opener(self) -> InboxOpener:
        """Opens the inbox records sealed to this key: the agent's assignments and stops."""
        seed = self.key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                      serialization.NoEncryption())
        return InboxOpener(seed, bytes.fromhex(self.public_key))

    def sign(self, digest: str) -> str:
        return self.key.sign(digest.encode()).hex()

    def sign_command(self, value: bytes) -> bytes:
        """The header value that signs a command's encoded record."""
        return self.key.sign(signed_bytes(value)).hex().encode()

    @classmethod
    def load_or_create(cls, path: Path) -> "Signer":
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            return cls(key)
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return cls(key, created=True)


class SigningSender(CommandSender):
    """A CommandSender whose every command carries the signer's signature of its record value."""

    def __init__(self, *args, signer: Signer, **kwargs):
        super().__init__(*args, **kwargs)
        self.signer = signer

    async def send(self, command, *, extra_headers=(), **ids):
        key, value, headers = self.message(command, **ids)
        headers.append((SIGNATURE_HEADER, self.signer.sign_command(value)))
        return await self.producer.send(command_topic(self.topics, command), value, key=key,
                                        headers=headers + list(extra_headers))
