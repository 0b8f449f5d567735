"""The impact view's queries on SQLite and PostgreSQL: open incidents only (done ones and
other types left out), changes not done whose window has not ended, the latest broadcast of
each incident, and the items of `maildesk services --json`."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from maildesk.routing.cis import Service
from maildesk.store import repo
from maildesk.store.cis import link_ci
from maildesk.store.db import create_db_engine, session_factory, transaction
from maildesk.store.impact import latest_broadcasts, open_changes, open_incidents, services_json
from maildesk.store.models import Contact, Ticket

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SERVICES = (
    Service(name="network", queue="infra", criticality="high"),
    Service(name="email", queue="infra", depends_on=("network",)),
    Service(name="wiki", queue="it", criticality="low"),
)


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    engine = create_db_engine(db_url)
    try:
        with transaction(session_factory(engine)) as s:
            yield s
    finally:
        engine.dispose()


def ticket(
    session: Session,
    kind: str = "incident",
    status: str = "open",
    priority: str = "P3",
    *,
    service: str | None = None,
    ci: tuple[str, str] | None = None,
    window: tuple[int, int] | None = None,
) -> Ticket:
    contact = session.query(Contact).first() or Contact(email="carol@example.org", created_at=NOW)
    t = Ticket(
        requester=contact,
        subject=f"{kind} {priority}",
        status=status,
        priority=priority,
        queue="infra",
        type=kind,
        reply_token=secrets.token_hex(10),
        created_at=NOW,
        updated_at=NOW,
        service=service,
        change_start=NOW + timedelta(hours=window[0]) if window else None,
        change_end=NOW + timedelta(hours=window[1]) if window else None,
    )
    session.add(t)
    session.flush()
    if ci is not None:
        link_ci(session, t, ci[0], [ci[1]], "recognised", "test", NOW)
    return t


def test_open_incidents_changes_and_the_services_view(session: Session) -> None:
    p1 = ticket(session, priority="P1", ci=("core-sw1", "network"))
    p3 = ticket(session, service="wiki")
    ticket(session, status="resolved", priority="P1", service="email")
    ticket(session, status="merged", service="email")
    ticket(session, "request", service="email")
    change = ticket(session, "change", window=(-1, 2), ci=("core-sw1", "network"))
    ticket(session, "change", window=(-3, -1), service="email")  # its window is over
    ticket(session, "change", status="closed", window=(1, 2), service="email")
    ticket(session, "change", service="email")  # not scheduled

    found = [(i.id, i.priority, i.services) for i in open_incidents(session)]
    assert found == [(p1.id, "P1", ("network",)), (p3.id, "P3", ("wiki",))]
    assert [i.id for i in open_incidents(session, exclude=[p1.id])] == [p3.id]
    assert [(c.id, c.services) for c in open_changes(session, NOW)] == [(change.id, ("network",))]

    items = services_json(session, SERVICES, "MD", NOW)
    assert [(s["name"], s["state"], s["incidents"], s["changes"]) for s in items] == [
        ("network", "outage", [f"MD-{p1.id}"], [f"MD-{change.id}"]),
        ("email", "outage", [f"MD-{p1.id}"], [f"MD-{change.id}"]),
        ("wiki", "degraded", [f"MD-{p3.id}"], []),
    ]
    assert list(items[1]) == [
        "name",
        "state",
        "incidents",
        "changes",
        "description",
        "criticality",
        "queue",
        "depends_on",
        "subscribers",
    ]
    assert services_json(session, (), "MD", NOW) == []


def test_the_latest_broadcast_of_each_incident(session: Session) -> None:
    one, two, three = ticket(session), ticket(session), ticket(session)
    repo.add_event(session, one, "broadcast", NOW, text="first")
    repo.add_event(session, one, "broadcast", NOW, text="second")
    repo.add_event(session, two, "note", NOW, text="not a broadcast")
    repo.add_event(session, three, "broadcast", NOW, text="third")
    assert latest_broadcasts(session, [one.id, two.id, three.id]) == {
        one.id: "second",
        three.id: "third",
    }
    assert latest_broadcasts(session, []) == {}
