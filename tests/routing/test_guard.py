"""maildesk.routing.guard: never answer auto-replies, bounces, lists, bulk mail or ourselves."""

from __future__ import annotations

import pytest

from maildesk.mail.message import ParsedMessage
from maildesk.parse.parser import parse_message
from maildesk.routing.guard import LOOP_HEADER, is_own_loop, may_auto_reply

OWN = frozenset({"support@example.com", "helpdesk@example.com"})


def parsed(*headers: str, sender: str = "Carol <carol@client.example.org>") -> ParsedMessage:
    lines = [f"From: {sender}", "To: support@example.com", "Subject: Printer", *headers]
    return parse_message(("\r\n".join(lines) + "\r\n\r\nThe printer is jammed.\r\n").encode())


def test_ordinary_mail_is_answered() -> None:
    verdict = may_auto_reply(parsed(), OWN)
    assert verdict.allowed is True
    assert verdict.reason == ""


@pytest.mark.parametrize(
    "headers",
    [
        ("Auto-Submitted: no",),
        ("Auto-Submitted: No",),
        ("Auto-Submitted: no (sent by a person)",),
        ("Precedence: first-class",),
        ("X-Auto-Response-Suppress: DR, RN, NRN",),
        ("X-Loopback-Test: 1", "List-Idle: no"),
    ],
)
def test_harmless_headers_are_answered(headers: tuple[str, ...]) -> None:
    verdict = may_auto_reply(parsed(*headers), OWN)
    assert verdict.allowed is True, verdict.reason


@pytest.mark.parametrize(
    ("header", "reason_words"),
    [
        ("Auto-Submitted: auto-replied", ("auto-submitted", "auto-replied")),
        ("Auto-Submitted: auto-generated", ("auto-submitted", "auto-generated")),
        ("Auto-Submitted: Auto-Notified", ("auto-submitted", "auto-notified")),
        ("Precedence: bulk", ("precedence", "bulk")),
        ("Precedence: junk", ("precedence", "junk")),
        ("Precedence: List", ("precedence", "list")),
        ("List-Id: Users <users.lists.example.org>", ("list-id",)),
        ("List-Unsubscribe: <mailto:leave@lists.example.org>", ("list-unsubscribe",)),
        ("X-Loop: helpdesk@vendor.example.net", ("x-loop",)),
        (f"{LOOP_HEADER}: support@example.com", ("x-maildesk-loop",)),
        ("X-Auto-Response-Suppress: All", ("x-auto-response-suppress", "all")),
        ("X-Auto-Response-Suppress: OOF", ("x-auto-response-suppress", "oof")),
        ("X-Auto-Response-Suppress: DR, AutoReply", ("x-auto-response-suppress", "autoreply")),
    ],
)
def test_automatic_and_list_mail_is_refused(header: str, reason_words: tuple[str, ...]) -> None:
    verdict = may_auto_reply(parsed(header), OWN)
    assert verdict.allowed is False
    for word in reason_words:
        assert word in verdict.reason.lower()


def test_delivery_report_is_refused() -> None:
    raw = (
        b"From: Mail Delivery System <mailer@mx.client.example.org>\r\n"
        b"To: support@example.com\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        b"\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.client.example.org\r\n\r\n"
        b"Final-Recipient: rfc822; gone@client.example.org\r\nAction: failed\r\n"
        b"Status: 5.1.1\r\n--B--\r\n"
    )
    verdict = may_auto_reply(parse_message(raw), OWN)
    assert verdict.allowed is False
    assert "multipart/report" in verdict.reason


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@mx.client.example.org",
        "Mail Delivery Subsystem <mailer-daemon@mx.client.example.org>",
        "postmaster@client.example.org",
        "noreply@saas.example.net",
        "no-reply@saas.example.net",
        "do-not-reply@saas.example.net",
        "donotreply@saas.example.net",
        "bounces+12345-abc@lists.example.net",
        "noreply-notifications@saas.example.net",
    ],
)
def test_robot_senders_are_refused(sender: str) -> None:
    msg = parsed(sender=sender)
    verdict = may_auto_reply(msg, OWN)
    assert verdict.allowed is False
    assert msg.from_addr in verdict.reason
    assert "automated" in verdict.reason


@pytest.mark.parametrize(
    "sender",
    ["noreplyjoe@client.example.org", "postmasters.guild@club.example.org", "mailer@shop.example"],
)
def test_people_whose_address_merely_resembles_a_robot_are_answered(sender: str) -> None:
    assert may_auto_reply(parsed(sender=sender), OWN).allowed is True


@pytest.mark.parametrize(
    "sender",
    [
        "support@example.com",
        "Support Desk <SUPPORT@Example.COM>",
        "helpdesk@example.com",
        "support+a1b2c3d4e5f60718293a@example.com",
        "Desk <helpdesk+anything@example.com>",
    ],
)
def test_own_addresses_are_refused(sender: str) -> None:
    verdict = may_auto_reply(parsed(sender=sender), OWN)
    assert verdict.allowed is False
    assert "own" in verdict.reason


def test_same_local_part_at_another_domain_is_answered() -> None:
    assert may_auto_reply(parsed(sender="support@vendor.example.net"), OWN).allowed is True


@pytest.mark.parametrize("sender", ["<>", "undisclosed-recipients:;", "just-a-name"])
def test_unusable_sender_is_refused(sender: str) -> None:
    verdict = may_auto_reply(parsed(sender=sender), OWN)
    assert verdict.allowed is False
    assert "from" in verdict.reason.lower()


def test_reasons_differ_by_cause() -> None:
    reasons = {
        may_auto_reply(parsed("Auto-Submitted: auto-replied"), OWN).reason,
        may_auto_reply(parsed("Precedence: bulk"), OWN).reason,
        may_auto_reply(parsed("List-Id: <l.example.org>"), OWN).reason,
        may_auto_reply(parsed(sender="postmaster@example.org"), OWN).reason,
        may_auto_reply(parsed(sender="support@example.com"), OWN).reason,
    }
    assert len(reasons) == 5
    assert all(reasons)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((f"{LOOP_HEADER}: support@example.com",), True),
        ((f"{LOOP_HEADER}:  SUPPORT@example.com ",), True),
        ((f"{LOOP_HEADER}: support@other-desk.example.net",), False),
        (("X-Loop: support@example.com",), False),
        ((), False),
    ],
)
def test_is_own_loop(headers: tuple[str, ...], expected: bool) -> None:
    assert is_own_loop(parsed(*headers), "support@example.com") is expected
