"""Contacts with several addresses (merged_into); impact, urgency and organisation on tickets

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 05:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns are added in place: rebuilding `contacts` on SQLite (what a batch foreign key
    # needs) would have to drop a table that tickets refer to, which foreign keys forbid.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE contacts ADD COLUMN merged_into_id INTEGER REFERENCES contacts(id)")
    else:
        op.add_column("contacts", sa.Column("merged_into_id", sa.BigInteger(), nullable=True))
        op.create_foreign_key(
            "fk_contacts_merged_into_id", "contacts", "contacts", ["merged_into_id"], ["id"]
        )
    op.add_column("contacts", sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("contacts", sa.Column("merged_by", sa.String(length=320), nullable=True))
    op.create_index("ix_contacts_merged_into_id", "contacts", ["merged_into_id"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("impact", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("urgency", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("organisation", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("organisation")
        batch.drop_column("urgency")
        batch.drop_column("impact")
    op.drop_index("ix_contacts_merged_into_id", table_name="contacts")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_contacts_merged_into_id", "contacts", type_="foreignkey")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("merged_by")
        batch.drop_column("merged_at")
        batch.drop_column("merged_into_id")
