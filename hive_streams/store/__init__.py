"""SQL side of hive-streams: tables, engines, the projection of the log into SQL, and read queries."""
from .db import create_schema, make_engine
from .projection import LogRecord, apply_batch, load_offsets

__all__ = ["make_engine", "create_schema", "LogRecord", "apply_batch", "load_offsets"]
