"""SLA clocks on tickets: policy, working time consumed, due times, warnings, breaches

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 18:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTANTS = (
    "status_changed_at",
    "sla_running_since",
    "first_response_at",
    "sla_response_warned_at",
    "sla_response_breached_at",
    "sla_resolution_warned_at",
    "sla_resolution_breached_at",
    "reminded_at",
    "sla_response_due",
    "sla_resolution_due",
    "sla_next_check",
)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("sla_policy", sa.String(length=128), nullable=True))
        batch.add_column(
            sa.Column("sla_consumed_us", sa.BigInteger(), nullable=False, server_default="0")
        )
        for name in INSTANTS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_tickets_sla_next_check", ["sla_next_check"])
    # Tickets from before: their status last changed no later than their last update.
    op.execute("UPDATE tickets SET status_changed_at = updated_at")


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_sla_next_check")
        for name in reversed(INSTANTS):
            batch.drop_column(name)
        batch.drop_column("sla_consumed_us")
        batch.drop_column("sla_policy")
