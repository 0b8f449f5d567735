"""Schema migrations: a database made by an older release is upgraded in place, data kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from maildesk.store.db import create_db_engine, current_revision, upgrade

pytestmark = pytest.mark.empty_database


def test_upgrade_from_the_first_schema_keeps_data(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        upgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO contacts (email, name, created_at) VALUES (:e, :n, :t)"),
                {"e": "carol@example.org", "n": "Carol", "t": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        upgrade(engine)
        upgrade(engine)  # idempotent
        assert current_revision(engine) != "0001"
        with engine.connect() as conn:
            row = conn.execute(text("SELECT email, name, bounced_at FROM contacts")).one()
        assert tuple(row) == ("carol@example.org", "Carol", None)
    finally:
        engine.dispose()


def test_head_revision_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from maildesk.store.db import alembic_config, head_revision

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
