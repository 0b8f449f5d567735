"""maildesk.routing.receipt: read receipts (MDN) in their standard and vendor forms, what
they report and on which message; a person's "Read: ..." mail is never one."""

from __future__ import annotations

from pathlib import Path

import pytest

from maildesk.parse.parser import parse_message
from maildesk.routing import bounce
from maildesk.routing.guard import automatic, may_auto_reply
from maildesk.routing.receipt import identity, recognise
from tests.conftest import mail

DATA = Path(__file__).resolve().parents[1] / "data"
ORIGINAL = "<179534713069.1.2.MD-1@example.com>"


def fixture(name: str, original: str = ORIGINAL) -> bytes:
    return (DATA / "receipts" / name).read_bytes().replace(b"{ORIGINAL_ID}", original.encode())


@pytest.mark.parametrize(
    ("name", "disposition", "automatic_", "standard", "refers"),
    [
        ("thunderbird-mdn.eml", "displayed", False, True, True),
        ("outlook-read.eml", "displayed", True, True, True),
        ("outlook-not-read.eml", "deleted", True, True, True),
        ("outlook-gelesen-plain.eml", "displayed", None, False, True),
        ("exchange-content-class.eml", "displayed", None, False, False),
    ],
)
def test_receipt_forms(
    name: str, disposition: str, automatic_: bool | None, standard: bool, refers: bool
) -> None:
    raw = fixture(name)
    msg = parse_message(raw)
    found = recognise(msg, raw)
    assert found is not None
    assert found.disposition == disposition
    assert found.automatic is automatic_
    assert found.standard is standard
    assert found.reporter == "carol@client.example.org"
    # The receipt names the message it reports on first; its own Message-ID never.
    assert (found.original_ids[:1] == (ORIGINAL,)) is refers
    assert msg.message_id not in found.original_ids


def test_disposition_modes_and_modifiers_are_read() -> None:
    raw = fixture("outlook-read.eml").replace(
        b"automatic-action/MDN-sent-automatically; displayed",
        b"manual-action/MDN-sent-automatically; processed/error, expired",
    )
    found = recognise(parse_message(raw), raw)
    assert found is not None
    assert (found.action_mode, found.sending_mode) == ("manual-action", "MDN-sent-automatically")
    assert found.disposition == "processed"
    assert found.modifiers == ("error", "expired")
    assert found.automatic is True  # the receipt was sent without asking the reader


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Read: the attached manual", "I read the manual; the printer still burns."),
        ("Read: [MD-1] Printer on fire", "Read it, thanks. Your message was helpful."),
        ("Gelesen: Drucker", "Habe alles gelesen, der Drucker brennt noch."),
        ("Lu : imprimante", "Votre message a bien été reçu, merci."),
        # The receipt's text, but quoted inside a longer mail of the person's own.
        (
            "Read: [MD-1] Printer on fire",
            "Why did I get this?\n\n> Your message\n> was read on Monday.\n",
        ),
        # The receipt's text, without a receipt's subject.
        ("Printer", "Your message\n\n  To: Test Desk\n\nwas read on Monday, 10:05."),
    ],
)
def test_a_persons_read_mail_is_not_a_receipt(subject: str, body: str) -> None:
    raw = mail(subject, body, sender="carol@client.example.org").as_bytes()
    assert recognise(parse_message(raw), raw) is None


@pytest.mark.parametrize(
    "subject",
    [
        "Read: [MD-1] Printer on fire",
        "Not read: [MD-1] Printer on fire",
        "Lu : [MD-1] Printer on fire",
        "Gelezen: [MD-1] Printer on fire",
        "Return Receipt (displayed) - [MD-1] Printer on fire",
    ],
)
def test_vendor_subject_with_the_receipt_text_is_a_receipt(subject: str) -> None:
    body = (
        "Your message\n\n  To: Test Desk\n  Subject: [MD-1] Printer on fire\n"
        "  Sent: Monday, November 23, 2026 10:00 AM\n\n"
        "was read on Monday, November 23, 2026 10:05 AM."
    )
    raw = mail(subject, body, in_reply_to=ORIGINAL).as_bytes()
    found = recognise(parse_message(raw), raw)
    assert found is not None and found.original_ids == (ORIGINAL,)
    assert found.disposition == ("deleted" if subject.startswith("Not") else "displayed")


def test_a_delivery_report_is_a_bounce_not_a_receipt() -> None:
    raw = (DATA / "bounces" / "postfix-dsn.eml").read_bytes()
    assert recognise(parse_message(raw), raw) is None
    assert bounce.recognise(parse_message(raw), raw, "") is not None


def test_identity_is_the_message_the_reader_and_the_disposition() -> None:
    raw = fixture("outlook-read.eml")
    copy = raw.replace(b"AM0PR01MB1234ABCD", b"AM0PR01MB5555ABCD").replace(b"10:05:39", b"10:05:41")
    deleted = fixture("outlook-not-read.eml")
    first, second, third = (recognise(parse_message(r), r) for r in (raw, copy, deleted))
    assert first is not None and second is not None and third is not None
    assert parse_message(raw).message_id != parse_message(copy).message_id
    assert identity(first, ORIGINAL) == identity(second, ORIGINAL)
    assert identity(first, ORIGINAL) != identity(third, ORIGINAL)
    assert identity(first, ORIGINAL) != identity(first, "<another@example.com>")


def test_an_mdn_is_automatic_mail_and_never_answered() -> None:
    raw = fixture("exchange-content-class.eml")
    msg = parse_message(raw)
    assert automatic(msg) == "Content-Class: urn:content-classes:mdn"
    assert may_auto_reply(msg, ["support@example.com"]).allowed is False
    standard = parse_message(fixture("thunderbird-mdn.eml"))
    assert may_auto_reply(standard, ["support@example.com"]).allowed is False
