"""Problems and events: a problem's known error; the alert state of monitored incidents

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("known_error", sa.Text(), nullable=True))
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("ticket_id", sa.BigInteger(), sa.ForeignKey("tickets.id", ondelete="CASCADE")),
        sa.Column("monitor", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=1000), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
    )
    op.create_index("ix_alerts_ticket", "alerts", ["ticket_id"])
    op.create_index("ix_alerts_key", "alerts", ["monitor", "key"])
    # At most one open incident per alert key, whatever number of daemons see the alert.
    op.create_index(
        "uq_alerts_open_key",
        "alerts",
        ["monitor", "key"],
        unique=True,
        sqlite_where=sa.text("is_open"),
        postgresql_where=sa.text("is_open"),
    )


def downgrade() -> None:
    op.drop_index("uq_alerts_open_key", table_name="alerts")
    op.drop_index("ix_alerts_key", table_name="alerts")
    op.drop_index("ix_alerts_ticket", table_name="alerts")
    op.drop_table("alerts")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("known_error")
