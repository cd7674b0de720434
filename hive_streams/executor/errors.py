"""Errors raised while running nodes."""
from __future__ import annotations

from hive_streams.exceptions import HiveError


class NodeError(HiveError):
    """A node failed; `message` is fit to show to users, `node_id` is set by run_dag."""

    def __init__(self, message: str, node_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.node_id = node_id
