"""Bounces: recognised in standard and non-standard formats, attached to the ticket whose
notification bounced, the recipient marked as bouncing, and never a ticket of their own."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from sqlalchemy import select

from maildesk.parse.parser import parse_message
from maildesk.routing.bounce import recognise
from maildesk.store.models import Contact
from tests.conftest import Desk, mail

DATA = Path(__file__).resolve().parents[1] / "data" / "bounces"
ORIGINAL = "<179534713069.1.2.MD-1@example.com>"


def fixture(name: str, original: str = ORIGINAL) -> bytes:
    return (DATA / name).read_bytes().replace(b"{ORIGINAL_ID}", original.encode())


@pytest.mark.parametrize(
    ("name", "permanent", "status", "diagnostic", "standard"),
    [
        ("postfix-dsn.eml", True, "5.1.1", "User unknown", True),
        ("qmail.eml", True, "5.7.1", "Mailbox disabled", False),
        ("exim.eml", True, "5.2.1", "account that you tried to reach is disabled", False),
        ("delayed-dsn.eml", False, "4.4.1", "Connection timed out", True),
    ],
)
def test_bounce_formats(
    name: str, permanent: bool, status: str, diagnostic: str, standard: bool
) -> None:
    raw = fixture(name)
    bounce = recognise(parse_message(raw), raw, envelope_from="")
    assert bounce is not None
    assert bounce.recipients == ("carol@client.example.org",)
    assert bounce.permanent is permanent
    assert bounce.status == status
    assert diagnostic in bounce.diagnostic
    assert bounce.standard is standard
    assert ORIGINAL in bounce.quoted_ids
    assert parse_message(raw).message_id not in bounce.quoted_ids


@pytest.mark.parametrize(
    ("sender", "subject", "envelope_from"),
    [
        ("carol@client.example.org", "Undeliverable printer", "carol@client.example.org"),
        ("noreply@vendor.example", "Your ticket", ""),  # null sender, ordinary subject
        ("mailer-daemon@x.example", "Out of office", "mailer-daemon@x.example"),
    ],
)
def test_ordinary_mail_is_not_a_bounce(sender: str, subject: str, envelope_from: str) -> None:
    raw = mail(subject, sender=sender).as_bytes()
    assert recognise(parse_message(raw), raw, envelope_from) is None


def _bounce_via_smtp(desk: Desk, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", desk.port, timeout=10) as smtp:
        smtp.sendmail("", ["support@example.com"], raw)  # null envelope sender, as MTAs do


@pytest.mark.parametrize("name", ["postfix-dsn.eml", "qmail.eml", "exim.eml"])
def test_bounce_lands_on_the_ticket_and_marks_the_contact(desk: Desk, name: str) -> None:
    desk.send(mail("Printer on fire", sender="carol@client.example.org"))
    [ticket] = desk.wait_tickets(1)
    [ack] = [m for m in desk.sink.wait_for(2) if "carol@" in str(m["To"])]

    _bounce_via_smtp(desk, fixture(name, ack["Message-ID"]))
    desk.wait_processed(2)

    assert len(desk.tickets()) == 1, "a bounce never opens a ticket"
    detail = desk.ticket(ticket["ref"])
    [event] = [e for e in detail["events"] if e["kind"] == "bounce"]
    assert event["data"]["original"] == ack["Message-ID"]
    assert event["data"]["recipients"] == ["carol@client.example.org"]
    assert event["data"]["permanent"] is True
    bounce_messages = [m for m in detail["messages"] if m["from"].lower().startswith("mailer")]
    assert len(bounce_messages) == 1 and bounce_messages[0]["internal"] is True
    with desk.app.sessions() as session:
        contact = session.scalar(select(Contact).where(Contact.email == "carol@client.example.org"))
        assert contact is not None and contact.bounced_at is not None
        assert contact.bounce_reason
    assert len(desk.sink.messages) == 2, "nothing is sent in answer to a bounce"

    # Carol writes again: her address works after all.
    desk.send(mail("Still on fire", sender="carol@client.example.org"))
    desk.wait_tickets(2)
    with desk.app.sessions() as session:
        contact = session.scalar(select(Contact).where(Contact.email == "carol@client.example.org"))
        assert contact is not None and contact.bounced_at is None


def test_bounce_for_unknown_message_is_kept_without_a_ticket(desk: Desk) -> None:
    _bounce_via_smtp(desk, fixture("postfix-dsn.eml", "<never-sent@elsewhere.example>"))
    assert desk.wait_processed(1) == ["bounce"]
    assert desk.tickets() == []
    assert desk.sink.messages == []


def test_delay_notice_does_not_mark_the_contact(desk: Desk) -> None:
    desk.send(mail("Printer on fire", sender="carol@client.example.org"))
    [ticket] = desk.wait_tickets(1)
    [ack] = [m for m in desk.sink.wait_for(2) if "carol@" in str(m["To"])]
    _bounce_via_smtp(desk, fixture("delayed-dsn.eml", ack["Message-ID"]))
    desk.wait_processed(2)
    [event] = [e for e in desk.ticket(ticket["ref"])["events"] if e["kind"] == "bounce"]
    assert event["data"]["permanent"] is False and event["data"]["status"] == "4.4.1"
    with desk.app.sessions() as session:
        contact = session.scalar(select(Contact).where(Contact.email == "carol@client.example.org"))
        assert contact is not None and contact.bounced_at is None
