"""The performance view reads a topic's audit rows by the time they happened: an index for it.

A database made before migrations by `create_all` may have it already: it is then kept.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "ix_audit_occurred" in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("audit_log")}:
        return  # made by `create_all` before migrations: kept
    op.create_index("ix_audit_occurred", "audit_log", ["topic", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_occurred", table_name="audit_log")
