"""Change management: a change's scheduled window on its ticket

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-02 06:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("change_start", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("change_end", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_tickets_change_start", "tickets", ["change_start"])


def downgrade() -> None:
    op.drop_index("ix_tickets_change_start", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("change_end")
        batch.drop_column("change_start")
