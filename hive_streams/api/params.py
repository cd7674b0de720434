"""Parameters and bodies several routes declare."""
from __future__ import annotations

from ..domain.definition import TASK
from ..domain.fields import Field
from .batch import MAX_BATCH
from .body import DEFINITION_TYPES
from .guard import Body, Param
from .idempotency import HEADER, MAX_KEY_LENGTH

TENANT = Param("tenant", Field(("string",), min_length=1, max_length=200,
                                doc="the tenant a task id in the path, or the view, is of (callers who see every "
                                    "tenant); others may name only their own"))
IDEMPOTENCY_KEY = Param(HEADER, Field(("string",), min_length=1, max_length=MAX_KEY_LENGTH,
                                      doc="the same key and request again get the first answer, and act once"),
                        "header")
RESUME = (Param("Last-Event-ID", Field(("string",), max_length=4096, doc="resume after this frame id"), "header"),
          Param("last_event_id", Field(("string",), max_length=4096, doc="resume after this frame id (first "
                                                                          "connection)")))
DEFINITIONS = Body({"oneOf": [TASK.schema(), {"type": "array", "items": TASK.schema(), "minItems": 1,
                                              "maxItems": MAX_BATCH, "description": "a batch of task definitions"}]},
                   DEFINITION_TYPES)
POINT = (Param("as_of", Field(("string",), max_length=64,
                               doc="as it was at this ISO 8601 time (UTC unless it says), folded from the log")),
         Param("at_seq", Field(("string",), max_length=20,
                               doc="as it was after its event with this seq (a whole number from 1), from the log")))
