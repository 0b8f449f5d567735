"""Service catalog: a ticket's catalog item and fields; the approvals of catalog requests

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 06:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # "awaiting-approval" is longer than the 16 characters statuses had (SQLite ignores it).
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("tickets", "status", type_=sa.String(length=32))
    op.add_column("tickets", sa.Column("catalog_item", sa.String(length=128), nullable=True))
    op.add_column("tickets", sa.Column("fields", sa.JSON(), nullable=True))
    op.create_table(
        "approvals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "ticket_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("approver", sa.String(length=320), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("via", sa.String(length=255), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("ticket_id", "approver", name="uq_approvals_ticket_approver"),
    )
    op.create_index("ix_approvals_decision", "approvals", ["decision"])


def downgrade() -> None:
    op.drop_index("ix_approvals_decision", table_name="approvals")
    op.drop_table("approvals")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("fields")
        batch.drop_column("catalog_item")
