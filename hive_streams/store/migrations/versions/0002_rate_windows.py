"""Rate-limit windows: per principal and action, a count per minute that every API process shares.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("rate_windows",
                    sa.Column("key", sa.Text(), nullable=False),
                    sa.Column("window_start", sa.BigInteger(), nullable=False),
                    sa.Column("count", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("key", "window_start"))
    op.create_index("ix_rate_windows_start", "rate_windows", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_rate_windows_start", table_name="rate_windows")
    op.drop_table("rate_windows")
