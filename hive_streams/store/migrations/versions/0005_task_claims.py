"""Task id claims: the first definition submitted over the API for each chosen task id, shared by every API process.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("task_claims",
                    sa.Column("task_id", sa.Text(), nullable=False),
                    sa.Column("digest", sa.String(64), nullable=False),
                    sa.Column("claimed_at", sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint("task_id"))
    op.create_index("ix_task_claims_claimed_at", "task_claims", ["claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_task_claims_claimed_at", table_name="task_claims")
    op.drop_table("task_claims")
