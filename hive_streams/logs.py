"""Log lines of every process: plain text, or (HIVE_LOG_FORMAT=json) one JSON object per line that names
the trace, span and correlation id of the record or request being handled when the line was written."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from . import tracing

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        ids = tracing.current_ids()
        if ids is not None:
            line["trace_id"] = f"{ids[0]:032x}"
            line["span_id"] = f"{ids[1]:016x}"
        if (correlation := tracing.correlation.get()) is not None:
            line["correlation_id"] = correlation
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str = "info", fmt: str = "text") -> None:
    """The root logger's one handler, in the chosen format (replacing any earlier one)."""
    if fmt not in FORMATS:
        raise ValueError(f"HIVE_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
