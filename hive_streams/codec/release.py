"""python -m hive_streams.codec.release: add every current schema that is not yet in schemas/history/."""
from __future__ import annotations

import sys

from ..settings import load
from .history import incompatibilities, snapshot
from .registry import SchemaRegistry


def main(schemas_dir: str | None = None) -> int:
    registry = SchemaRegistry(schemas_dir or load().schemas_dir)
    problems = incompatibilities(registry)
    if problems:
        print("not released: the current schemas are incompatible with released versions", *problems, sep="\n  ", file=sys.stderr)
        return 1
    added = snapshot(registry)
    for path in added:
        print(f"added {path}")
    if not added:
        print("nothing to release: every current schema is in history")
    return 0


if __name__ == "__main__":
    sys.exit(main())
