"""Full-text search over message subjects and bodies: SQLite FTS5, PostgreSQL tsvector + GIN

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 05:40:00

"""

from collections.abc import Sequence

from alembic import op

from maildesk.store.search import PG_DOCUMENT, SQLITE_INDEX

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The index is kept by the database itself (triggers, a generated column), so every
    # path that stores or edits a message updates it in that same transaction; creating it
    # here indexes the messages already stored.
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_INDEX:
            op.execute(statement)
        op.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
    else:
        op.execute(
            "ALTER TABLE messages ADD COLUMN search_tsv tsvector "
            f"GENERATED ALWAYS AS ({PG_DOCUMENT}) STORED"
        )
        op.execute("CREATE INDEX ix_messages_search_tsv ON messages USING gin (search_tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("messages_fts_ai", "messages_fts_ad", "messages_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS messages_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_messages_search_tsv")
        op.execute("ALTER TABLE messages DROP COLUMN IF EXISTS search_tsv")
