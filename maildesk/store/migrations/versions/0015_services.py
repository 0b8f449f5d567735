"""Services and configuration items: the CIs a ticket is about, the service a rule set

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 10:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("service", sa.String(length=128), nullable=True))
    op.create_table(
        "ticket_cis",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "ticket_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("ci", sa.String(length=255), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=320), nullable=False),
        sa.UniqueConstraint("ticket_id", "ci", name="uq_ticket_cis_ticket_ci"),
    )
    op.create_index("ix_ticket_cis_ci", "ticket_cis", ["ci"])


def downgrade() -> None:
    op.drop_index("ix_ticket_cis_ci", table_name="ticket_cis")
    op.drop_table("ticket_cis")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("service")
