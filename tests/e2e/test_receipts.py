"""Mail about mail, end to end on SQLite and PostgreSQL: read receipts recorded on the
ticket they report on and changing nothing else, the same bounce or receipt delivered twice
recorded once, and message/partial fragments held until their set is complete, then
reassembled into one message (or, past the bounds, kept as attachments of ordinary mail).

Most tests run the one pipeline in-process (store_raw + process, as every ingest edge
does) on an injected clock; the last ones send over SMTP to a running daemon.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from maildesk import jobs, pipeline
from maildesk.app import App
from maildesk.config import load_config
from maildesk.ingest import inbox
from maildesk.store.db import transaction
from maildesk.store.models import OutboxEntry, RawMessage, Ticket
from tests.conftest import Clock, Desk, mail, run_cli, wait_until
from tests.routing.test_partial import fragments, whole_message

DATA = Path(__file__).resolve().parents[1] / "data"
CAROL = "carol@client.example.org"
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SLA = """
[[sla_policies]]
name = "standard"
default = true
calendar = "24x7"
first_response = { P1 = "1h", P2 = "2h", P3 = "4h", P4 = "8h" }
resolution = { P1 = "4h", P2 = "8h", P3 = "16h", P4 = "32h" }
"""


@pytest.fixture
def desk_app(
    db_url: str, write_config: Callable[..., Path]
) -> Iterator[Callable[..., tuple[App, Clock]]]:
    apps: list[App] = []

    def make(*, max_size: str = "1MB") -> tuple[App, Clock]:
        clock = Clock(MONDAY)
        config = load_config(write_config(db_url, extra=SLA, max_size=max_size))
        app = App.build(config, clock=clock)
        apps.append(app)
        return app, clock

    yield make
    for app in apps:
        app.close()


def receive(app: App, raw: bytes, *, sender: str = CAROL) -> pipeline.Outcome:
    raw_id = inbox.store_raw(
        app, raw, origin="test", envelope_from=sender, envelope_to=["support@example.com"]
    )
    return pipeline.process(app, raw_id)


def report(name: str, original: str) -> bytes:
    """A receipt or bounce fixture answering our message `original`."""
    return (DATA / name).read_bytes().replace(b"{ORIGINAL_ID}", original.encode())


def outbox(app: App) -> list[OutboxEntry]:
    with transaction(app.sessions, readonly=True) as session:
        rows = list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)))
        session.expunge_all()
        return rows


def ticket_row(app: App, ticket_id: int = 1) -> Ticket:
    with transaction(app.sessions, readonly=True) as session:
        found = session.get_one(Ticket, ticket_id)
        session.expunge(found)
        return found


def show(app: App, ref: str = "MD-1") -> dict[str, Any]:
    code, out = run_cli("ticket", "show", ref, "--json", "--config", str(app.config.path))
    assert code == 0, out
    result: dict[str, Any] = json.loads(out)
    return result


def raw_rows(app: App) -> list[RawMessage]:
    with transaction(app.sessions, readonly=True) as session:
        rows = list(session.scalars(select(RawMessage).order_by(RawMessage.id)))
        session.expunge_all()
        return rows


def ticket_count(app: App) -> int:
    with transaction(app.sessions, readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)


def open_and_answer(app: App, clock: Clock) -> str:
    """Carol opens MD-1 and Alice answers it (the ticket is pending, its SLA clock paused);
    the Message-ID of the answer Carol got."""
    assert receive(app, mail("Printer on fire", sender=CAROL).as_bytes()).status == "created"
    clock.advance(minutes=30)
    address = app.reply_address(1, "agent", "alice@example.com")
    answer = mail("Re: [MD-1] Printer on fire", "Is it plugged in?", sender="alice@example.com")
    answer.replace_header("To", address)
    raw_id = inbox.store_raw(
        app,
        answer.as_bytes(),
        origin="test",
        envelope_from="alice@example.com",
        envelope_to=[address],
    )
    assert pipeline.process(app, raw_id).status == "agent_reply"
    [relay] = [e for e in outbox(app) if e.kind == "relay"]
    return relay.message_id


@pytest.mark.parametrize(
    ("name", "found_by", "automatic"),
    [
        ("receipts/outlook-read.eml", "message-id", True),
        ("receipts/thunderbird-mdn.eml", "message-id", False),
        ("receipts/outlook-gelesen-plain.eml", "message-id", None),
        ("receipts/exchange-content-class.eml", "subject", None),
    ],
)
def test_receipt_is_recorded_on_the_ticket_and_changes_nothing(
    desk_app: Callable[..., tuple[App, Clock]], name: str, found_by: str, automatic: bool | None
) -> None:
    app, clock = desk_app()
    answer = open_and_answer(app, clock)
    before, sent, history = ticket_row(app), len(outbox(app)), show(app)["events"]
    assert before.status == "pending" and before.sla_resolution_due is None  # paused

    clock.advance(hours=2)
    outcome = receive(app, report(name, answer), sender="")
    assert (outcome.status, outcome.ref) == ("receipt", "MD-1")

    after = ticket_row(app)
    assert after.status == "pending", "a receipt is not the requester's reply"
    assert after.sla_resolution_due is None and after.sla_running_since is None
    assert after.sla_consumed_us == before.sla_consumed_us
    assert after.updated_at == before.updated_at
    assert len(outbox(app)) == sent, "no acknowledgement, no agent notice"
    assert ticket_count(app) == 1
    detail = show(app)
    [kept] = [m for m in detail["messages"] if m["kind"] == "receipt"]
    assert kept["internal"] is True and kept["direction"] == "in"
    *earlier, event = detail["events"]
    assert earlier == history, "one event, the receipt's: no message, status or SLA event"
    assert (event["kind"], event["actor"]) == ("receipt", CAROL)
    assert event["data"]["disposition"] == "displayed"
    assert event["data"]["automatic"] is automatic
    assert event["data"]["found_by"] == found_by
    assert event["data"]["original"] == (answer if found_by == "message-id" else None)
    code, story = run_cli("ticket", "show", "MD-1", "--config", str(app.config.path))
    assert code == 0 and f"{CAROL} (mail): read receipt: displayed" in story, story


def test_receipt_of_mail_on_no_ticket_is_kept_without_one(
    desk_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, _ = desk_app()
    outcome = receive(app, report("receipts/outlook-read.eml", "<elsewhere@x.example>"), sender="")
    raw = raw_rows(app)[-1]
    assert outcome.status == "receipt" and outcome.ticket_id is None
    assert raw.status == "receipt" and raw.ticket_id is None
    assert raw.reason == (
        f"read receipt (displayed) from {CAROL} for a message that is not on any ticket"
    )
    assert ticket_count(app) == 0 and outbox(app) == []
    config = str(app.config.path)
    code, out = run_cli("quarantine", "--status", "receipt", "--json", "--config", config)
    assert code == 0, out
    assert [r["reason"] for r in json.loads(out)] == [raw.reason]


def test_a_persons_read_reply_is_a_reply(desk_app: Callable[..., tuple[App, Clock]]) -> None:
    app, clock = desk_app()
    answer = open_and_answer(app, clock)
    body = "Read: yes, I read it. It is plugged in and still burning."
    reply = mail("Read: [MD-1] Printer on fire", body, sender=CAROL, in_reply_to=answer)
    outcome = receive(app, reply.as_bytes())
    assert outcome.status == "appended" and outcome.ref == "MD-1"
    assert ticket_row(app).status == "open", "the requester's reply reopens the pending ticket"
    [kept] = [m for m in show(app)["messages"] if m["message_id"] == reply["Message-ID"]]
    assert (kept["kind"], kept["internal"]) == ("mail", False)


def test_the_same_receipt_twice_is_recorded_once(
    desk_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, clock = desk_app()
    answer = open_and_answer(app, clock)
    first = report("receipts/outlook-read.eml", answer)
    # The same receipt delivered again: another Message-ID (resent), or none at all.
    again = first.replace(b"AM0PR01MB1234ABCD", b"AM0PR01MB7777ABCD")
    bare = b"\r\n".join(line for line in first.split(b"\r\n") if not line.startswith(b"Message-ID"))
    assert receive(app, first, sender="").status == "receipt"
    for copy in (again, bare):
        clock.advance(minutes=10)
        outcome = receive(app, copy, sender="")
        assert (outcome.status, outcome.ref) == ("duplicate", "MD-1")
        assert "the same read receipt (displayed) from" in outcome.reason
        assert "already recorded on MD-1" in outcome.reason
    assert [r.status for r in raw_rows(app)][-3:] == ["processed", "duplicate", "duplicate"]
    # Deleted unread is news: recorded.
    assert receive(app, report("receipts/outlook-not-read.eml", answer), sender="").status == (
        "receipt"
    )
    detail = show(app)
    assert [e["data"]["disposition"] for e in detail["events"] if e["kind"] == "receipt"] == [
        "displayed",
        "deleted",
    ]
    assert len([m for m in detail["messages"] if m["kind"] == "receipt"]) == 2


def test_the_same_bounce_twice_is_recorded_once(
    desk_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, clock = desk_app()
    assert receive(app, mail("Printer on fire", sender=CAROL).as_bytes()).status == "created"
    [ack] = [e for e in outbox(app) if e.kind == "acknowledgement"]
    first = report("bounces/postfix-dsn.eml", ack.message_id)
    # Delivered to the second support address with another Message-ID and a later
    # Arrival-Date, and once more without a Message-ID at all.
    again = first.replace(b"0F1A2B3C4D@mx", b"9E8D7C6B5A@mx").replace(
        b"12:00:00 +0000", b"13:30:00 +0000"
    )
    bare = b"\n".join(line for line in first.split(b"\n") if not line.startswith(b"Message-Id"))
    assert receive(app, first, sender="").status == "bounce"
    for copy in (again, bare):
        clock.advance(hours=1)
        outcome = receive(app, copy, sender="")
        assert (outcome.status, outcome.ref) == ("duplicate", "MD-1")
        assert "the same hard bounce for carol@client.example.org is already recorded" in (
            outcome.reason
        )
    delayed = report("bounces/delayed-dsn.eml", ack.message_id)
    assert receive(app, delayed, sender="").status == "bounce", "a new status is news"
    clock.advance(days=8)
    assert receive(app, first.replace(b"0F1A2B3C4D@mx", b"1111111111@mx"), sender="").status == (
        "bounce"
    ), "past REPEAT_WINDOW a report is recorded again"
    detail = show(app)
    statuses = [e["data"]["status"] for e in detail["events"] if e["kind"] == "bounce"]
    assert statuses == ["5.1.1", "4.4.1", "5.1.1"]
    assert len([m for m in detail["messages"] if m["kind"] == "bounce"]) == 3


def test_fragments_wait_then_are_reassembled_into_one_ticket(
    desk_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, clock = desk_app()
    whole = whole_message("line of the report\r\n" * 60)
    one, two, three = fragments(whole, 3, total_on_last_only=True)

    waiting = receive(app, three)
    assert waiting.status == "partial" and waiting.ticket_id is None
    assert waiting.reason == (
        'partial 3 of 3 of id "report.1@client.example.org" from carol@client.example.org: '
        "waiting for 1, 2"
    )
    clock.advance(hours=1)
    assert receive(app, one).reason.endswith("waiting for 2")
    assert [r.reason[-13:] for r in raw_rows(app)] == ["waiting for 2"] * 2, "both say it"
    assert ticket_count(app) == 0 and outbox(app) == []

    clock.advance(hours=1)
    done = receive(app, two)
    assert done.status == "reassembled" and done.then == 4
    rows = raw_rows(app)
    assert [r.status for r in rows] == ["reassembled"] * 3 + ["processed"]
    assert all(
        "reassembled as raw 4 (fragments: raws 2, 3, 1)" in (r.reason or "") for r in rows[:3]
    )
    # The message they make was stored raw and went the one path, like any stored mail.
    assert (rows[3].origin, rows[3].envelope_from, rows[3].ticket_id) == ("reassembled", CAROL, 1)
    detail = show(app)
    assert detail["subject"] == "Big report"
    [message] = detail["messages"][:1]
    assert message["body_text"] == ("line of the report\n" * 60).strip()
    assert message["message_id"] == message_from(whole)
    assert [e.kind for e in outbox(app)] == ["acknowledgement", "agent_new_ticket"]


def test_import_reassembles_fragments_as_it_goes(
    desk_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, _ = desk_app()
    parts = fragments(whole_message(), 2)
    assert list(pipeline.import_many(app, parts, save=inbox.save_raw)) == [
        "partial",
        "reassembled",
    ]
    assert [r.status for r in raw_rows(app)] == ["reassembled", "reassembled", "processed"]
    assert show(app)["subject"] == "Big report"
    assert list(pipeline.import_many(app, parts, save=inbox.save_raw)) == ["already imported"] * 2


def test_a_reassembled_message_is_not_reassembled_again(
    desk_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, _ = desk_app()
    inner = fragments(whole_message(), 1, "inner@client.example.org")[0]
    [outer] = fragments(inner, 1, "outer@client.example.org")
    assert receive(app, outer).status == "reassembled"
    rows = raw_rows(app)
    assert [r.status for r in rows] == ["reassembled", "processed"]
    assert "not reassembled (it was itself reassembled from fragments)" in (rows[1].reason or "")
    [message] = show(app)["messages"][:1]
    [attachment] = message["attachments"]
    assert attachment["content_type"] == "message/partial"


def message_from(raw: bytes) -> str:
    return next(
        line.split(b":", 1)[1].strip().decode()
        for line in raw.split(b"\r\n")
        if line.lower().startswith(b"message-id:")
    )


def test_the_same_fragment_twice_is_kept_once(
    desk_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, _ = desk_app()
    one, two = fragments(whole_message(), 2)
    assert receive(app, one).status == "partial"
    again = receive(app, one)
    assert again.status == "duplicate" and "the same fragment is already stored (raw 1)" in (
        again.reason
    )
    assert receive(app, two).status == "reassembled"
    assert [r.status for r in raw_rows(app)] == [
        "reassembled",
        "duplicate",
        "reassembled",
        "processed",
    ]


def test_fragments_not_complete_in_time_become_ordinary_mail(
    desk_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, clock = desk_app()
    one, two, three = fragments(whole_message(), 3)
    assert receive(app, one).status == "partial"
    clock.advance(days=1)
    assert receive(app, two).status == "partial"

    assert jobs.release_stale_fragments(app, clock.advance(days=5, hours=23)) == 0
    assert jobs.release_stale_fragments(app, clock.advance(hours=1)) == 1  # fragment 1: 7 days
    outcomes = pipeline.process_pending(app)
    # Fragment 1 gives up the set, and fragment 2 (put back in line by it) follows.
    assert [o.status for o in outcomes] == ["created"]
    assert [o.status for o in pipeline.process_pending(app)] == ["created"]
    late = receive(app, three)
    assert late.status == "created", "the set was given up: the last one is mail too"
    for number, raw in ((1, one), (2, two), (3, three)):
        detail = show(app, f"MD-{number}")
        [message] = detail["messages"][:1]
        assert f"Fragment {number} of 3 of a message sent in parts" in message["body_text"]
        [attachment] = message["attachments"]
        assert attachment["filename"] == f"partial-{number}-of-3.eml"
        assert attachment["content_type"] == "message/partial"
        assert attachment["size"] == len(raw), "the fragment as it arrived"
    reasons = [r.reason or "" for r in raw_rows(app)]
    assert "not reassembled (the set was not complete within 7 days)" in reasons[0]
    assert "not reassembled (fragment 1 was processed as ordinary mail)" in reasons[1]


def test_a_fragment_set_over_the_size_limit_is_not_reassembled(
    desk_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, _ = desk_app(max_size="50KB")
    one, two = fragments(whole_message(("z" * 76 + "\r\n") * 900), 2)
    assert 25_000 < len(one) < 50_000 and 25_000 < len(two) < 50_000
    assert receive(app, one).status == "partial"
    outcome = receive(app, two)
    assert outcome.status == "created"
    assert [o.status for o in pipeline.process_pending(app)] == ["created"]  # fragment 1
    assert ticket_count(app) == 2
    assert "over the message size limit (50000 bytes)" in (raw_rows(app)[1].reason or "")


# --- over SMTP, a running daemon -------------------------------------------------------------


def test_receipt_over_smtp_goes_on_the_ticket(desk: Desk) -> None:
    desk.send(mail("Printer on fire", sender=CAROL))
    [ticket] = desk.wait_tickets(1)
    [ack] = [m for m in desk.sink.wait_for(2) if CAROL in str(m["To"])]
    with smtplib.SMTP("127.0.0.1", desk.port, timeout=10) as smtp:
        smtp.sendmail(
            "", ["support@example.com"], report("receipts/outlook-read.eml", ack["Message-ID"])
        )
    assert desk.wait_processed(2) == ["processed", "processed"]
    detail = desk.ticket(ticket["ref"])
    assert detail["status"] == "new"
    [event] = [e for e in detail["events"] if e["kind"] == "receipt"]
    assert event["data"]["original"] == ack["Message-ID"]
    assert len(desk.tickets()) == 1 and len(desk.sink.messages) == 2, "nothing answers it"


def test_fragments_over_smtp_become_one_ticket(desk: Desk) -> None:
    whole = whole_message("line of the report\r\n" * 30)
    for part in reversed(fragments(whole, 3)):
        desk.send(part, mail_from=CAROL)
    [ticket] = desk.wait_tickets(1)
    wait_until(lambda: "pending" not in desk.raw_statuses() and len(desk.raw_statuses()) == 4)
    assert desk.raw_statuses() == ["reassembled"] * 3 + ["processed"]
    detail = desk.ticket(ticket["ref"])
    assert detail["subject"] == "Big report"
    assert detail["messages"][0]["body_text"] == ("line of the report\n" * 30).strip()
