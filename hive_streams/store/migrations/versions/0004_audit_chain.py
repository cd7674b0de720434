"""The audit log becomes a hash chain: one row per committed record (duplicates flagged, not skipped),
the record's bytes, the hash, who acted and the request's correlation id.

Rows made before this revision carry no chain, so they are dropped together with the connector's
offsets: the connector projects the event topics (kept forever) again from the beginning. The read
models it also folds skip what they already applied, so they are unchanged.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def new_columns() -> list[sa.Column]:
    return [
        sa.Column("principal", sa.Text(), nullable=True),
        sa.Column("correlation_id", sa.Text(), nullable=True),
        sa.Column("duplicate", sa.Boolean(), nullable=False),
        sa.Column("record_key", sa.LargeBinary(), nullable=True),
        sa.Column("record_headers", sa.LargeBinary(), nullable=False),
        sa.Column("record_value", sa.LargeBinary(), nullable=True),
        sa.Column("hash", sa.String(64), nullable=False),
    ]


NULLABLE_NOW = (("event_id", sa.Text()), ("aggregate_id", sa.Text()), ("seq", sa.BigInteger()),
                ("occurred_at", sa.BigInteger()), ("payload", Json))


def _chained() -> bool:
    """A database made by `create_all` from the current models has the chain already."""
    if op.get_context().as_sql:
        return False
    return "hash" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("audit_log")}


def upgrade() -> None:
    if _chained():
        return
    op.execute("delete from audit_log")
    op.execute("delete from consumer_offsets where consumer = 'audit'")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("uq_audit_event", type_="unique")
        for name, kind in NULLABLE_NOW:
            batch.alter_column(name, existing_type=kind, nullable=True)
        for column in new_columns():
            batch.add_column(column)
    op.create_index("ix_audit_event", "audit_log", ["topic", "event_id"])
    op.create_index("ix_audit_correlation", "audit_log", ["correlation_id"])


def downgrade() -> None:
    op.execute("delete from audit_log")
    op.execute("delete from consumer_offsets where consumer = 'audit'")
    op.drop_index("ix_audit_correlation", table_name="audit_log")
    op.drop_index("ix_audit_event", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        for column in new_columns():
            batch.drop_column(column.name)
        for name, kind in NULLABLE_NOW:
            batch.alter_column(name, existing_type=kind, nullable=False)
        batch.create_unique_constraint("uq_audit_event", ["topic", "event_id"])
