"""The tables of the first release, and the API's idempotency keys.

A database made before migrations existed (by `create_all`) already has some of these tables:
each table is created only when it is missing, so such a database is adopted as it is.

Revision ID: 0001
Revises:
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _create(name: str, *columns, indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> None:
    if not op.get_context().as_sql and sa.inspect(op.get_bind()).has_table(name):
        return
    op.create_table(name, *columns)
    for index, fields in indexes:
        op.create_index(index, name, list(fields))


def upgrade() -> None:
    _create("audit_log",
            sa.Column("id", Id, primary_key=True, autoincrement=True),
            sa.Column("event_id", sa.Text(), nullable=False),
            sa.Column("aggregate_id", sa.Text(), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("event_type", sa.String(200), nullable=False),
            sa.Column("topic", sa.String(255), nullable=False),
            sa.Column("partition", sa.Integer(), nullable=False),
            sa.Column("offset", sa.BigInteger(), nullable=False),
            sa.Column("occurred_at", sa.BigInteger(), nullable=False),
            sa.Column("recorded_at", sa.BigInteger(), nullable=False),
            sa.Column("payload", Json, nullable=False),
            sa.Column("headers", Json, nullable=False),
            sa.UniqueConstraint("topic", "partition", "offset", name="uq_audit_position"),
            sa.UniqueConstraint("topic", "event_id", name="uq_audit_event"),
            indexes=(("ix_audit_aggregate", ("aggregate_id", "seq")),))
    _create("tasks",
            sa.Column("task_id", sa.Text(), primary_key=True),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("requester", sa.Text(), nullable=False),
            sa.Column("priority", sa.Integer(), nullable=False),
            sa.Column("agent_id", sa.Text(), nullable=True),
            sa.Column("attempt", sa.Integer(), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("submitted_at", sa.BigInteger(), nullable=False),
            sa.Column("updated_at", sa.BigInteger(), nullable=False),
            sa.Column("state", Json, nullable=False),
            sa.Column("first_partition", sa.Integer(), nullable=False),
            sa.Column("first_offset", sa.BigInteger(), nullable=False),
            indexes=(("ix_tasks_status", ("status", "updated_at")),))
    _create("agents",
            sa.Column("agent_id", sa.Text(), primary_key=True),
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("capabilities", Json, nullable=False),
            sa.Column("slots", sa.Integer(), nullable=False),
            sa.Column("holding", sa.Integer(), nullable=False),
            sa.Column("last_seen", sa.BigInteger(), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("state", Json, nullable=False))
    _create("consumer_offsets",
            sa.Column("consumer", sa.String(200), primary_key=True),
            sa.Column("topic", sa.String(255), primary_key=True),
            sa.Column("partition", sa.Integer(), primary_key=True),
            sa.Column("next_offset", sa.BigInteger(), nullable=False))
    _create("agent_outcomes",
            sa.Column("event_id", sa.Text(), primary_key=True),
            sa.Column("agent_id", sa.Text(), nullable=False),
            sa.Column("task_id", sa.Text(), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("event_type", sa.String(200), nullable=False),
            sa.Column("at", sa.BigInteger(), nullable=False),
            indexes=(("ix_outcomes_agent", ("agent_id", "at")),))
    _create("accounts",
            sa.Column("account", sa.Text(), primary_key=True),
            sa.Column("available", sa.BigInteger(), nullable=False),
            sa.Column("held", sa.BigInteger(), nullable=False))
    _create("ledger_entries",
            sa.Column("event_id", sa.Text(), primary_key=True),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("event_type", sa.String(200), nullable=False),
            sa.Column("task_id", sa.Text(), nullable=True),
            sa.Column("escrow_id", sa.Text(), nullable=True),
            sa.Column("amount", sa.BigInteger(), nullable=False),
            sa.Column("legs", Json, nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("at", sa.BigInteger(), nullable=False),
            indexes=(("ix_ledger_task", ("task_id",)),))
    _create("ledger_postings",
            sa.Column("account", sa.Text(), primary_key=True),
            sa.Column("event_id", sa.Text(), primary_key=True),
            sa.Column("seq", sa.BigInteger(), nullable=False))
    _create("idempotency_keys",
            sa.Column("scope", sa.String(64), primary_key=True),
            sa.Column("caller", sa.Text(), nullable=False),
            sa.Column("route", sa.Text(), nullable=False),
            sa.Column("idempotency_key", sa.Text(), nullable=False),
            sa.Column("request_digest", sa.String(64), nullable=False),
            sa.Column("status", sa.Integer(), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.Column("headers", Json, nullable=False),
            sa.Column("created_at", sa.BigInteger(), nullable=False),
            indexes=(("ix_idempotency_created", ("created_at",)),))


def downgrade() -> None:
    for name in ("idempotency_keys", "ledger_postings", "ledger_entries", "accounts", "agent_outcomes",
                 "consumer_offsets", "agents", "tasks", "audit_log"):
        op.drop_table(name)
