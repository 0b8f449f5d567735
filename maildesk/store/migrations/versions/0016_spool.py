"""Spool: a raw message taken from the SQLite spool file records its spool key

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 10:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # "<spool generation>.<spool row id>": the spool row this raw message was taken from,
    # so a spool row is taken once, however often a crash makes the pipeline look again.
    # A plain ADD COLUMN (no table copy on SQLite): a large store upgrades in a moment.
    op.add_column("raw_messages", sa.Column("spool_key", sa.String(length=64), nullable=True))
    op.create_index("ux_raw_messages_spool_key", "raw_messages", ["spool_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_raw_messages_spool_key", table_name="raw_messages")
    with op.batch_alter_table("raw_messages") as batch:
        batch.drop_column("spool_key")
