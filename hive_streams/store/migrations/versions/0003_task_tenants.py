"""Tasks carry their tenant (the prefix of a `<tenant>:<id>` task id), so views filter by it with an index.

A database made before migrations by `create_all` may have the column already: it is then kept.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "tenant" in {c["name"] for c in inspector.get_columns("tasks")}:
        return
    op.add_column("tasks", sa.Column("tenant", sa.Text(), nullable=False, server_default=""))
    position = "strpos(task_id, ':')" if op.get_bind().dialect.name == "postgresql" else "instr(task_id, ':')"
    op.execute(f"UPDATE tasks SET tenant = substr(task_id, 1, {position} - 1) WHERE {position} > 0")
    op.create_index("ix_tasks_tenant", "tasks", ["tenant", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_tenant", table_name="tasks")
    op.drop_column("tasks", "tenant")
