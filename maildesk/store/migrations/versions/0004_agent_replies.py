"""Agent replies: watchers, ticket links, merges, event channel, desk settings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 17:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("merged_into_id", Id, nullable=True))
        batch.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key("fk_tickets_merged_into", "tickets", ["merged_into_id"], ["id"])
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("via", sa.String(length=16), nullable=False, server_default="mail")
        )
    op.create_table(
        "watchers",
        sa.Column("id", Id, primary_key=True),
        sa.Column("ticket_id", Id, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=320), nullable=False),
        sa.UniqueConstraint("ticket_id", "email", name="uq_watchers_ticket_email"),
    )
    op.create_table(
        "ticket_links",
        sa.Column("id", Id, primary_key=True),
        sa.Column("ticket_id", Id, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("linked_id", Id, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("relation", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("ticket_id", "linked_id", name="uq_ticket_links_pair"),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_table("ticket_links")
    op.drop_table("watchers")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("via")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_merged_into", type_="foreignkey")
        batch.drop_column("resolved_at")
        batch.drop_column("merged_into_id")
