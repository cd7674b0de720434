"""Registered workflow versions: a new version only when the definition changed."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from .db import insert
from .models import workflows as table


@dataclass(frozen=True)
class Version:
    name: str
    version: int
    definition: str
    digest: str
    created_by: str
    created_at: int

    def summary(self) -> dict:
        return {"name": self.name, "version": self.version, "digest": self.digest, "created_by": self.created_by,
                "created_at": self.created_at}


def _version(row) -> Version:
    return Version(row.name, row.version, row.definition, row.digest, row.created_by, row.created_at)


def register(engine: Engine, tenant: str, name: str, definition: str, digest: str, by: str, at: int,
             attempts: int = 5) -> tuple[Version, bool]:
    """The version holding this definition: the latest if it is the same, else a new one. (version, created)"""
    for _ in range(attempts):
        latest = get(engine, tenant, name)
        if latest is not None and latest.digest == digest:
            return latest, False
        number = (latest.version if latest else 0) + 1
        try:
            with engine.begin() as conn:
                conn.execute(insert(conn, table).values(tenant=tenant, name=name, version=number, definition=definition,
                                                        digest=digest, created_by=by, created_at=at))
        except IntegrityError:
            continue  # another request took this number: look again
        return Version(name, number, definition, digest, by, at), True
    raise RuntimeError(f"could not register workflow {name!r}: too many concurrent versions")


def get(engine: Engine, tenant: str, name: str, version: int | None = None) -> Version | None:
    with engine.connect() as conn:
        where = (table.c.tenant == tenant) & (table.c.name == name)
        if version is None:
            latest = select(func.max(table.c.version)).where(where).scalar_subquery()
            where = where & (table.c.version == latest)
        else:
            where = where & (table.c.version == version)
        row = conn.execute(select(table).where(where)).first()
    return _version(row) if row else None


def versions(engine: Engine, tenant: str, name: str) -> list[Version]:
    with engine.connect() as conn:
        rows = conn.execute(select(table).where((table.c.tenant == tenant) & (table.c.name == name))
                            .order_by(table.c.version)).all()
    return [_version(r) for r in rows]
