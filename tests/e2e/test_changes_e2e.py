"""Change management in the running desk, over real SMTP, on SQLite and PostgreSQL: a change
scheduled by mail and by `ticket set`, refused inside a `[[change_freeze]]`, before approval
and on a ticket that is no change; the change calendar with an overlap flagged; the notices at
window start and an hour after its end (an injected clock), each once; #implemented and
#failed closing the loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from maildesk import jobs
from maildesk.store.models import Ticket
from maildesk.tickets import changes
from maildesk.tickets.commands import parse_reply
from maildesk.tickets.replies import command_context
from tests.agents import ALICE, Mailbox, events, open_ticket, reply
from tests.conftest import Desk, Sink, running_desk, wait_until

CHANGES = """
[sla]
leads = { it = "lead@example.com" }

[[change_freeze]]
name = "year end"
start = "2026-12-20T00:00"
end = "2027-01-04T00:00"
"""
START = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)  # the desk's timezone is UTC
END = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)


class Clock:
    """The desk's clock: the real time until a test moves it to `at`."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or datetime.now(UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def change_desk(
    db_url: str, sink: Sink, write_config: Callable[..., Path], clock: Clock
) -> Iterator[Desk]:
    config = write_config(db_url, sink.port, extra=CHANGES)
    with running_desk(config, sink, clock=clock) as d:
        yield d


def notices_at(desk: Desk, clock: Clock, at: datetime) -> None:
    """Move the clock to `at` and run the window notices (the daemon's job may run them
    first: either way each goes out once)."""
    clock.at = at
    jobs.change_notices(desk.app, at)


def subjects(mails: list) -> list[str]:  # type: ignore[type-arg]
    return [str(m["Subject"]) for m in mails]


def test_a_change_is_scheduled_listed_noticed_and_closed(change_desk: Desk, clock: Clock) -> None:
    desk = change_desk
    first = open_ticket(desk, "Upgrade the mail server", sender="carol@example.org")
    alice = Mailbox(desk, ALICE)
    code, out = desk.cli("ticket", "set", first.ref, "type=change", "assignee=alice@example.com")
    assert code == 0, out
    assert "Assigned to you" in subjects(alice.next())[0]
    assert desk.ticket(first.ref)["change_window"] is None
    # Inside the year-end freeze: refused with an error mail naming it, nothing changes.
    reply(desk, first.notice, "#schedule 2026-12-21 22:00 23:30")
    (error,) = alice.next()
    body = error.get_body().get_content()  # type: ignore[union-attr]
    assert 'change freeze "year end"' in body, body
    assert desk.ticket(first.ref)["change_window"] is None
    assert events(desk, first.ref, "commands_rejected")
    # Outside it: scheduled in the desk's timezone, the window in the JSON.
    reply(desk, first.notice, "#schedule 2026-12-05 22:00 23:30")
    wait_until(lambda: desk.ticket(first.ref)["change_window"] or None)
    assert desk.ticket(first.ref)["change_window"] == {
        "start": "2026-12-05T22:00:00Z",
        "end": "2026-12-05T23:30:00Z",
    }
    (scheduled,) = events(desk, first.ref, "change_scheduled")
    assert scheduled["actor"] == ALICE and scheduled["data"]["to"]["end"] == "2026-12-05T23:30:00Z"
    # A second change in the same queue, by `ticket set` with ISO 8601 and an offset.
    second = open_ticket(desk, "Move the file server", sender="dave@example.org")
    assert desk.cli("ticket", "set", second.ref, "type=change")[0] == 0
    window = "window=2026-12-06T00:00+01:00/2026-12-06T01:30+01:00"
    code, out = desk.cli("ticket", "set", second.ref, window)
    assert code == 0, out
    rows = desk.json("changes", "--from", "2026-12-05", "--to", "2026-12-05")
    assert [(r["ref"], r["overlaps"]) for r in rows] == [
        (first.ref, [second.ref]),
        (second.ref, [first.ref]),
    ]
    assert rows[0]["assignee"] == ALICE and rows[0]["status"] == "open"
    assert rows[1]["change_window"]["start"] == "2026-12-05T23:00:00Z"
    assert desk.json("changes", "--from", "2026-12-07") == []
    code, out = desk.cli("changes")
    assert code == 0 and "OVERLAP" in out, out
    # A watcher hears the start too; every notice goes out once.
    assert desk.cli("ticket", "set", first.ref, "cc=+eve@example.org")[0] == 0
    alice, eve = Mailbox(desk, ALICE), Mailbox(desk, "eve@example.org")
    assert jobs.change_notices(desk.app, START - timedelta(minutes=1)) == 0
    notices_at(desk, clock, START + timedelta(minutes=1))
    assert subjects(alice.next()) == [f"[{first.ref}] Change starting: Upgrade the mail server"]
    assert "Change starting" in subjects(eve.next())[0]
    assert jobs.change_notices(desk.app, START + timedelta(minutes=2)) == 0
    assert len(events(desk, first.ref, "change_starting_notified")) == 1
    assert events(desk, second.ref, "change_starting_notified") == []
    # The first is implemented; the second is still open an hour after its end.
    reply(desk, first.notice, "#implemented went fine")
    wait_until(lambda: desk.ticket(first.ref)["status"] == "resolved" or None)
    assert events(desk, first.ref, "change_implemented")[0]["data"]["comment"] == "went fine"
    lead = Mailbox(desk, "lead@example.com")
    notices_at(desk, clock, END + timedelta(hours=2))  # the second's start, then its end
    assert subjects(lead.next()) == [f"[{second.ref}] Change window passed: Move the file server"]
    assert jobs.change_notices(desk.app, END + timedelta(hours=2)) == 0
    assert len(events(desk, second.ref, "change_window_passed_notified")) == 1
    assert lead.nothing_new()
    assert events(desk, first.ref, "change_window_passed_notified") == []
    # Moved to a new window, a change is noticed again at its new start.
    alice = Mailbox(desk, ALICE)
    assert (
        desk.cli("ticket", "set", second.ref, "assignee=alice", "window=2026-12-06 22:00 23:00")[0]
        == 0
    )
    assert "Assigned to you" in subjects(alice.next())[0]
    notices_at(desk, clock, datetime(2026, 12, 6, 22, 1, tzinfo=UTC))
    assert "Change starting: Move the file server" in subjects(alice.next())[0]
    assert len(events(desk, second.ref, "change_starting_notified")) == 2
    code, out = desk.cli("ticket", "set", second.ref, "failed=disk full")
    assert code != 0  # not a `ticket set` key; #failed is a mail command
    # #failed by mail closes the second with its reason.
    reply(desk, second.notice, "#failed rollback: disk full")
    wait_until(lambda: desk.ticket(second.ref)["status"] == "closed" or None)
    (failed,) = events(desk, second.ref, "change_failed")
    assert failed["data"]["comment"] == "rollback: disk full"


def test_only_an_approved_change_is_scheduled(change_desk: Desk) -> None:
    desk = change_desk
    incident = open_ticket(desk, "Printer jammed", sender="carol@example.org")
    code, out = desk.cli("ticket", "set", incident.ref, "window=2026-12-05T22:00/2026-12-05T23:00")
    assert code != 0 and "only a change" in out, out
    assert desk.cli("ticket", "set", incident.ref, "type=change")[0] == 0
    # Awaiting approval (the status approvals set): refused, with the reason.
    awaiting = Ticket(type="change", status="awaiting-approval", queue="it")
    ctx = command_context(desk.app, ALICE)
    parsed = parse_reply("#schedule 2026-12-05 22:00 23:00", ctx)
    (error,) = changes.check(desk.app, awaiting, parsed.commands)
    assert "awaiting approval" in error.reason
    assert desk.ticket(incident.ref)["change_window"] is None
    code, out = desk.cli("ticket", "set", incident.ref, "window=tomorrow")
    assert code != 0 and "needs a window" in out, out
    code, out = desk.cli("ticket", "set", incident.ref, "window=tomorrow/later")
    assert code != 0 and "'tomorrow' is not a date and time" in out, out
