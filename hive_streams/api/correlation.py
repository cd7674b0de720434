"""The correlation id of a request: the client's X-Request-Id or W3C traceparent trace id when valid, else a
new uuid. Every command the request sends carries it as `ce_correlationid`; so does all they cause."""
from __future__ import annotations

import re
import uuid

REQUEST_ID = "X-Request-Id"
TRACEPARENT = "traceparent"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def correlation_id(headers) -> str:
    given = headers.get(REQUEST_ID, "").strip()
    if _REQUEST_ID.fullmatch(given):
        return given
    trace = _TRACEPARENT.fullmatch(headers.get(TRACEPARENT, "").strip().lower())
    if trace and trace.group(1) != "ff" and trace.group(2) != "0" * 32 and trace.group(3) != "0" * 16:
        return trace.group(2)
    return uuid.uuid4().hex
