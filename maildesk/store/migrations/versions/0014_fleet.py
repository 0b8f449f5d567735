"""Several daemons on one database: leases (IMAP mailboxes, scheduled job firings) and the
claim a daemon holds on pending raw messages

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 10:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # Nullable without a default: PostgreSQL adds them without rewriting the table.
    op.add_column("raw_messages", sa.Column("claimed_by", sa.String(length=128), nullable=True))
    op.add_column(
        "raw_messages", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("raw_messages") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
    op.drop_table("leases")
