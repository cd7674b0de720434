"""SQL tables: the audit log, the task and agent read models, the connector's stored offsets, the API's
idempotency keys and rate-limit windows. They change only through the Alembic migrations in
`migrations/versions`."""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Json = JSON().with_variant(JSONB(), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY


class Base(DeclarativeBase):
    pass


class AuditRow(Base):
    """One row per committed record of an event topic, in log order, chained by hash per partition."""
    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("topic", "partition", "offset", name="uq_audit_position"),  # a redelivered record
        Index("ix_audit_event", "topic", "event_id"),  # the same event produced twice: flagged, not skipped
        Index("ix_audit_aggregate", "aggregate_id", "seq"),
        Index("ix_audit_correlation", "correlation_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_id: Mapped[str | None] = mapped_column(Text, nullable=True)  # none for an undecodable record
    aggregate_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    event_type: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(255))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the event's `at`, epoch ms
    recorded_at: Mapped[int] = mapped_column(BigInteger)  # when the connector wrote the row, epoch ms
    payload: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    headers: Mapped[dict[str, str]] = mapped_column(Json)
    principal: Mapped[str | None] = mapped_column(Text, nullable=True)  # who acted: an account, agent:<id>, system:<source>
    correlation_id: Mapped[str | None] = mapped_column(Text, nullable=True)  # the request that caused it
    duplicate: Mapped[bool] = mapped_column(Boolean)  # its event id was on this topic before
    record_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # the record's bytes, as hashed
    record_headers: Mapped[bytes] = mapped_column(LargeBinary)  # audit.chain.canonical_headers
    record_value: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    hash: Mapped[str] = mapped_column(String(64))  # audit.chain.link of the row before it in its partition


class TaskRow(Base):
    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_status", "status", "updated_at"), Index("ix_tasks_tenant", "tenant", "updated_at"))

    task_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant: Mapped[str] = mapped_column(Text, server_default="")  # of `<tenant>:<id>`; "" for a bare id
    status: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(Text)
    requester: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer)
    agent_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    submitted_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[dict[str, Any]] = mapped_column(Json)  # the whole TaskState, via codec.avro.to_record
    first_partition: Mapped[int] = mapped_column(Integer)  # where the task's first event is: SSE seeks here
    first_offset: Mapped[int] = mapped_column(BigInteger)


class AgentRow(Base):
    __tablename__ = "agents"

    agent_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))
    capabilities: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    slots: Mapped[int] = mapped_column(Integer)
    holding: Mapped[int] = mapped_column(Integer)  # slots promised to tasks
    last_seen: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[dict[str, Any]] = mapped_column(Json)  # the whole AgentState (holding is a set of task ids)


class ConsumerOffset(Base):
    __tablename__ = "consumer_offsets"

    consumer: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)


class AgentOutcomeRow(Base):
    """One row per task event that says something about an agent: its reputation, explained."""
    __tablename__ = "agent_outcomes"
    __table_args__ = (Index("ix_outcomes_agent", "agent_id", "at"),)

    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    agent_id: Mapped[str] = mapped_column(Text)
    task_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # completed, failed, late, rejected
    event_type: Mapped[str] = mapped_column(String(200))
    at: Mapped[int] = mapped_column(BigInteger)


class AccountRow(Base):
    """Balances in cents, folded from the ledger's legs."""
    __tablename__ = "accounts"

    account: Mapped[str] = mapped_column(Text, primary_key=True)
    available: Mapped[int] = mapped_column(BigInteger)
    held: Mapped[int] = mapped_column(BigInteger)


class LedgerEntryRow(Base):
    """One ledger event, with the accounts and task it touches; unique on its event id."""
    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_task", "task_id"),)

    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(200))
    task_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    escrow_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    legs: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[int] = mapped_column(BigInteger)


class LedgerPostingRow(Base):
    """Which accounts a ledger entry touches: an account's history."""
    __tablename__ = "ledger_postings"

    account: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)


class IdempotencyRow(Base):
    """The first answer to a request sent with an Idempotency-Key, shared by every API process."""
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_created", "created_at"),)

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)  # hash of caller, route and key
    caller: Mapped[str] = mapped_column(Text)
    route: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    request_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)  # the answer's body, byte for byte
    headers: Mapped[dict[str, str]] = mapped_column(Json)
    created_at: Mapped[int] = mapped_column(BigInteger)  # epoch ms


class RateWindowRow(Base):
    """How much one principal did of one rate-limited action in one minute, shared by every API process."""
    __tablename__ = "rate_windows"
    __table_args__ = (Index("ix_rate_windows_start", "window_start"),)

    key: Mapped[str] = mapped_column(Text, primary_key=True)  # `<limit name> <account>`
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch ms
    count: Mapped[int] = mapped_column(Integer)


class TaskClaimRow(Base):
    """The definition each chosen task id was first submitted with over the API, claimed before anything is
    sent: of two API processes submitting one id at once, one claims it and the other answers from the claim."""
    __tablename__ = "task_claims"
    __table_args__ = (Index("ix_task_claims_claimed_at", "claimed_at"),)

    task_id: Mapped[str] = mapped_column(Text, primary_key=True)  # `<tenant>:<id>`
    digest: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[int] = mapped_column(BigInteger)  # epoch ms


audit_log = AuditRow.__table__
ledger_postings = LedgerPostingRow.__table__
accounts = AccountRow.__table__
ledger_entries = LedgerEntryRow.__table__
agent_outcomes = AgentOutcomeRow.__table__
tasks = TaskRow.__table__
agents = AgentRow.__table__
consumer_offsets = ConsumerOffset.__table__
idempotency_keys = IdempotencyRow.__table__
rate_windows = RateWindowRow.__table__
task_claims = TaskClaimRow.__table__
