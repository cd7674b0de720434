"""A node's output, whole: inline from the read model, or a large one read from the blob topic."""
from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from ..domain.blobs import reference_of
from ..exceptions import BlobError
from ..kafka.access import access_for
from ..kafka.blobs import read_blob
from ..store import queries
from .errors import RequestError
from .tenants import task_id_of

DIGEST_HEADER = "X-Hive-Blob-Digest"


class Outputs:
    def __init__(self, api):
        self.api = api
        self.kafka = None  # taken on the first blob read: making the app needs no broker

    def _kafka(self):
        if self.kafka is None:
            self.kafka = access_for(self.api.settings, "api")
        return self.kafka

    async def node_output(self, request: Request) -> Response:
        """The output's JSON bytes exactly as the executor produced them."""
        task = await asyncio.to_thread(self.api.read, queries.get_task, task_id_of(request))
        if task is None:
            raise RequestError(404, "task_id", "no such task (yet): tasks appear here once their first event is recorded")
        node_id = request.path_params["node_id"]
        output_json = task["outputs"].get(node_id)
        if output_json is None:
            raise RequestError(404, "node_id", f"node {node_id!r} has no recorded output")
        ref = reference_of(output_json)
        if ref is None:
            return Response(output_json.encode(), media_type="application/json")
        try:
            data = await read_blob(self._kafka(), self.api.topics, ref)
        except BlobError as exc:
            raise RequestError(502, "node_id", str(exc)) from None
        return Response(data, media_type="application/json", headers={DIGEST_HEADER: ref.digest})
