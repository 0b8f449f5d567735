"""Self-service by mail over real SMTP, on SQLite and PostgreSQL: a `status` mail lists the
sender's own tickets (to that address only), a requester's proven `close` resolves a
ticket, a thank-you does not reopen one, and the satisfaction survey is sent once,
answered, recorded, and a `bad` answer reaches the assignee and the queue lead."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select, update

from maildesk import jobs
from maildesk.store.db import transaction
from maildesk.store.models import RawMessage, Ticket
from tests.agents import ALICE, CAROL, Mailbox, events, open_ticket, plain_reply, received
from tests.conftest import Desk, Sink, mail, running_desk, wait_until

DAVE = "dave@example.org"
LEAD = "lead@example.com"
SURVEY = """
[sla]
leads = { it = "lead@example.com" }

[survey]
enabled = true
delay = "1h"
queues = ["it"]
"""


@pytest.fixture
def survey_desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    with running_desk(write_config(db_url, sink.port, extra=SURVEY), sink) as d:
        yield d


def resolved_ago(desk: Desk, ago: timedelta) -> None:
    """Move every ticket's resolution back to `ago` before now (as time passing would)."""
    with transaction(desk.app.sessions) as session:
        session.execute(update(Ticket).values(resolved_at=desk.app.now() - ago))


def last_raw_reason(desk: Desk) -> str:
    with transaction(desk.app.sessions, readonly=True) as session:
        return str(
            session.scalars(select(RawMessage.reason).order_by(RawMessage.id.desc())).first()
        )


def unhappy(desk: Desk, address: str) -> list[EmailMessage]:
    return [m for m in received(desk, address) if "Unhappy requester" in str(m["Subject"])]


def body(message: object) -> str:
    return str(message.get_content())  # type: ignore[attr-defined]


def test_status_lists_only_the_senders_own_tickets(desk: Desk) -> None:
    first = open_ticket(desk, "Printer on fire")
    second = open_ticket(desk, "Scanner jammed")
    theirs = open_ticket(desk, "Dave's laptop is slow", sender=f"Dave <{DAVE}>")
    carol, dave = Mailbox(desk, CAROL), Mailbox(desk, DAVE)
    assert desk.cli("ticket", "set", second.ref, "status=resolved")[0] == 0
    carol.next()  # the resolution notice
    desk.send(mail("status", "", sender=f"Carol Customer <{CAROL}>"))
    [listing] = carol.next()
    text = body(listing)
    assert first.ref in text and "Printer on fire" in text and "status new" in text
    assert "Resolved lately" in text and second.ref in text
    assert theirs.ref not in text and "laptop" not in text
    assert listing["Auto-Submitted"] == "auto-replied"
    assert [str(a) for a in [listing["To"]]] == [CAROL]
    assert len(desk.tickets()) == 3  # no ticket opened
    assert dave.nothing_new()


def test_a_forged_from_sends_the_list_to_the_real_owner_only(desk: Desk) -> None:
    open_ticket(desk, "Printer on fire")
    mallory, carol = Mailbox(desk, "mallory@evil.example"), Mailbox(desk, CAROL)
    forged = mail("STATUS", "", sender=f"Carol Customer <{CAROL}>")
    forged["Reply-To"] = "mallory@evil.example"
    desk.send(forged, to=["support@example.com"])
    [listing] = carol.next()
    assert listing["To"] == CAROL and "Printer on fire" in body(listing)
    assert mallory.nothing_new()
    # Someone with no tickets gets a list with none, never anybody else's.
    desk.send(mail("status", "", sender="mallory@evil.example"))
    [empty] = mallory.next()
    assert "no open requests" in body(empty) and "Printer" not in body(empty)


def test_status_is_never_answered_for_automatic_mail_and_is_rate_limited(desk: Desk) -> None:
    open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    desk.send(mail("status", "", headers={"Auto-Submitted": "auto-replied"}))
    wait_until(lambda: desk.raw_statuses()[-1] == "ignored" or None)
    assert carol.nothing_new()
    per_hour = desk.config.notify.auto_replies_per_hour
    for _ in range(per_hour + 1):
        desk.send(mail("status", ""))
    desk.wait_processed(1 + 1 + per_hour + 1)  # the ticket, the automatic one, the requests
    assert len(carol.next(per_hour)) == per_hour
    assert carol.nothing_new()  # the one past the limit is not answered
    assert "rate limit" in last_raw_reason(desk)
    assert len(desk.tickets()) == 1


def test_close_by_proven_reply_resolves_with_a_receipt(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
    plain_reply(desk, opened.ack, "close\n\nThanks, works now.", sender=CAROL)
    [receipt] = carol.next()
    assert "Resolved at your request" in str(receipt["Subject"])
    ticket = desk.ticket(opened.ref)
    assert ticket["status"] == "resolved"
    [change] = [e for e in events(desk, opened.ref, "status") if e["data"]["to"] == "resolved"]
    assert change["actor"] == CAROL and "requester" in change["data"]["reason"]
    [notice] = alice.next()  # the agents hear the requester closed it
    assert opened.ref in str(notice["Subject"])
    assert carol.nothing_new()  # no second "resolved" notice besides the receipt


def test_close_without_proof_changes_nothing(desk: Desk) -> None:
    opened = open_ticket(desk)
    # To the plain support address: tied only by In-Reply-To, so its From is not proven.
    plain_reply(desk, opened.ack, "close", sender=CAROL, to="support@example.com")
    wait_until(lambda: events(desk, opened.ref, "close_refused") or None)
    ticket = desk.ticket(opened.ref)
    assert ticket["status"] == "new"
    [refused] = events(desk, opened.ref, "close_refused")
    assert "not proven" in refused["data"]["reason"]
    inbound = [m for m in ticket["messages"] if m["direction"] == "in"]
    assert inbound[-1]["body_text"].splitlines()[0] == "close"


def test_a_thank_you_does_not_reopen_a_resolved_ticket(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    assert desk.cli("ticket", "set", opened.ref, "status=resolved")[0] == 0
    carol.next()  # the resolution notice
    count = len(desk.ticket(opened.ref)["messages"])
    for words in ("Thank you!", "Danke schön\n\n-- \nCarol Customer\nACME", "谢谢"):
        plain_reply(desk, opened.ack, words, sender=CAROL)
    wait_until(lambda: len(events(desk, opened.ref, "gratitude")) == 3 or None)
    ticket = desk.ticket(opened.ref)
    assert ticket["status"] == "resolved"
    assert len(ticket["messages"]) == count + 3  # each recorded
    assert not events(desk, opened.ref, "reopened")
    plain_reply(desk, opened.ack, "Thanks, but it is burning again", sender=CAROL)
    wait_until(lambda: desk.ticket(opened.ref)["status"] == "open" or None)


def test_survey_sent_once_answered_recorded_and_bad_escalates(survey_desk: Desk) -> None:
    desk = survey_desk
    opened = open_ticket(desk)
    robot = mail("Nightly backup report", "All fine.", sender="noreply@backup.example.org")
    desk.send(robot)
    desk.wait_tickets(2)
    carol = Mailbox(desk, CAROL)
    for ref in (opened.ref, "MD-2"):
        code, out = desk.cli("ticket", "set", ref, "status=resolved", f"assignee={ALICE}")
        assert code == 0, out
    carol.next()  # the resolution notice
    assert desk.ticket(opened.ref)["csat"] is None
    resolved_ago(desk, timedelta(minutes=30))
    assert jobs.send_surveys(desk.app, desk.app.now()) == 0  # not yet: [survey] delay is 1h
    resolved_ago(desk, timedelta(hours=2))
    assert jobs.send_surveys(desk.app, desk.app.now()) == 1
    resolved_ago(desk, timedelta(hours=3))
    assert jobs.send_surveys(desk.app, desk.app.now()) == 0  # once per ticket
    [survey] = carol.next()
    assert "How did we do?" in str(survey["Subject"]) and opened.ref in str(survey["Subject"])
    [skipped] = events(desk, "MD-2", "survey_skipped")
    assert "automated" in skipped["data"]["reason"]
    robot_mail = received(desk, "noreply@backup.example.org")
    assert not [m for m in robot_mail if "How did we do" in str(m["Subject"])]
    plain_reply(desk, survey, "bad - it took a week\nand nobody called", sender=CAROL)
    csat = wait_until(lambda: desk.ticket(opened.ref)["csat"])
    assert (csat["score"], csat["comment"]) == ("bad", "it took a week\nand nobody called")
    assert csat["at"]
    assert desk.ticket(opened.ref)["status"] == "resolved"  # never reopened
    for who in (ALICE, LEAD):
        [notice] = wait_until(lambda who=who: unhappy(desk, who) or None)
        assert opened.ref in str(notice["Subject"]) and "nobody called" in body(notice)


def test_survey_answer_without_proof_is_not_recorded(survey_desk: Desk) -> None:
    desk = survey_desk
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    assert desk.cli("ticket", "set", opened.ref, "status=resolved")[0] == 0
    carol.next()  # the resolution notice
    resolved_ago(desk, timedelta(hours=2))
    assert jobs.send_surveys(desk.app, desk.app.now()) == 1
    [survey] = carol.next()
    plain_reply(desk, survey, "1", sender=CAROL, to="support@example.com")
    wait_until(lambda: events(desk, opened.ref, "survey_refused") or None)
    assert desk.ticket(opened.ref)["csat"] is None
    assert desk.ticket(opened.ref)["status"] == "resolved"
    plain_reply(desk, survey, "5 great", sender=CAROL)
    csat = wait_until(lambda: desk.ticket(opened.ref)["csat"])
    assert (csat["score"], csat["comment"]) == (5, "great")
