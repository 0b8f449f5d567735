"""Raw bodies: the bytes of a raw message move to a table of their own

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 16:20:00

SQLite writes a whole row again for any change to it: every change of a raw message's
status (claimed, processed, quarantined) wrote its bytes again, 30 MB for a big message.
With the bytes in raw_bodies, a status change writes a few dozen bytes. The upgrade copies
every stored message once (minutes for a store of many gigabytes).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "raw_bodies",
        sa.Column("raw_id", Id, nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["raw_id"], ["raw_messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("raw_id"),
    )
    op.execute("INSERT INTO raw_bodies (raw_id, raw) SELECT id, raw FROM raw_messages")
    with op.batch_alter_table("raw_messages") as batch:
        batch.drop_column("raw")


def downgrade() -> None:
    with op.batch_alter_table("raw_messages") as batch:
        batch.add_column(sa.Column("raw", sa.LargeBinary(), nullable=False, server_default=""))
    op.execute(
        "UPDATE raw_messages SET raw = "
        "(SELECT raw FROM raw_bodies WHERE raw_bodies.raw_id = raw_messages.id)"
    )
    op.drop_table("raw_bodies")
