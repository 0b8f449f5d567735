"""Is a message a forward, and whose mail does it forward (maildesk.routing.forward)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from maildesk.mail.message import ParsedMessage
from maildesk.parse.parser import parse_message
from maildesk.routing.forward import (
    forward_subject,
    forwarded,
    inside,
    is_forward,
    requester_address,
    requester_command,
)


def parsed(subject: str, body: str, attach: EmailMessage | None = None) -> ParsedMessage:
    msg = EmailMessage()
    msg["From"] = "Alice Admin <alice@example.com>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = "<fwd-1@example.com>"
    msg.set_content(body)
    if attach is not None:
        msg.add_attachment(attach)
    return parse_message(msg.as_bytes())


GMAIL = """\
Could you look at this one?

---------- Forwarded message ---------
From: Carol Customer <carol@example.org>
Date: Mon, 30 Nov 2026 at 10:00
Subject: Printer on fire
To: <alice@example.com>


Help, it is burning.
Second line.
"""
GMAIL_DE = """\
---------- Weitergeleitete Nachricht ---------
Von: Karl Kunde <karl@kunde.example>
Date: Mo., 30. Nov. 2026 um 10:00 Uhr
Subject: Drucker
To: <alice@example.com>

Der Drucker brennt.
"""
OUTLOOK = """\
FYI, urgent.

________________________________
From: Carol Customer <carol@example.org>
Sent: Monday, November 30, 2026 10:00 AM
To: Alice Admin <alice@example.com>
Subject: Printer on fire

Help, it is burning.
"""
OUTLOOK_MAILTO = """\
*From:* Carol Customer [mailto:carol@example.org]
*Sent:* Monday, November 30, 2026 10:00 AM
*To:* Alice Admin
*Subject:* Printer on fire

Help, it is burning.
"""
OUTLOOK_FR = """\
De : Claire Client <claire@client.example>
Envoyé : lundi 30 novembre 2026 10:00
À : Alice Admin <alice@example.com>
Objet : Imprimante

L'imprimante brûle.
"""
APPLE = """\
Begin forwarded message:

From: Carol Customer <carol@example.org>
Subject: Printer on fire
Date: 30 November 2026 at 10:00:00 CET
To: alice@example.com

Help, it is burning.
"""
THUNDERBIRD = """\
See below.

-------- Forwarded Message --------
Subject: Printer on fire
Date: Mon, 30 Nov 2026 10:00:00 +0100
From: Carol Customer <carol@example.org>
To: alice@example.com

Help, it is burning.
"""
THUNDERBIRD_DE = """\
-------- Weitergeleitete Nachricht --------
Betreff: Drucker
Datum: Mon, 30 Nov 2026 10:00:00 +0100
Von: Karl Kunde <karl@kunde.example>
An: alice@example.com

Der Drucker brennt.
"""


@pytest.mark.parametrize(
    ("subject", "body", "sender", "note", "text"),
    [
        ("Fwd: Printer on fire", GMAIL, "carol@example.org", "Could you look at this one?",
         "Help, it is burning.\nSecond line."),
        ("WG: Drucker", GMAIL_DE, "karl@kunde.example", "", "Der Drucker brennt."),
        ("FW: Printer on fire", OUTLOOK, "carol@example.org", "FYI, urgent.",
         "Help, it is burning."),
        ("FW: Printer on fire", OUTLOOK_MAILTO, "carol@example.org", "", "Help, it is burning."),
        ("TR: Imprimante", OUTLOOK_FR, "claire@client.example", "", "L'imprimante brûle."),
        ("Fwd: Printer on fire", APPLE, "carol@example.org", "", "Help, it is burning."),
        ("Printer on fire", APPLE, "carol@example.org", "", "Help, it is burning."),
        ("Fwd: Printer on fire", THUNDERBIRD, "carol@example.org", "See below.",
         "Help, it is burning."),
        ("WG: Drucker", THUNDERBIRD_DE, "karl@kunde.example", "", "Der Drucker brennt."),
    ],
)  # fmt: skip
def test_text_forwards_name_the_original_sender(
    subject: str, body: str, sender: str, note: str, text: str
) -> None:
    found = forwarded(parsed(subject, body))
    assert found is not None
    assert (found.original_from, found.note, found.original_text) == (sender, note, text)


def test_an_attached_message_names_its_sender() -> None:
    inner = EmailMessage()
    inner["From"] = "Carol Customer <carol@example.org>"
    inner["Subject"] = "Printer on fire"
    inner.set_content("Help, it is burning.")
    found = forwarded(parsed("Fwd: Printer on fire", "See the attached mail.", inner))
    assert found is not None
    assert (found.original_from, found.original_name) == ("carol@example.org", "Carol Customer")


@pytest.mark.parametrize(
    "subject",
    ["Fwd: x", "FW: x", "fw: x", "WG: x", "TR: x", "RV: x", "Enc: x", "Doorst: x", "VB: x",
     "Fwd[2]: x", "  Fwd : x", "Fwd: Re: x"],
)  # fmt: skip
def test_forward_subjects(subject: str) -> None:
    assert forward_subject(subject)


@pytest.mark.parametrize(
    "subject", ["Re: x", "AW: x", "Re: Fwd: x", "SV: x", "Forward planning", "x FW: y", ""]
)
def test_other_subjects_are_not_forwards(subject: str) -> None:
    assert not forward_subject(subject)


def test_a_reply_quoting_outlook_is_not_a_forward() -> None:
    """Outlook's From:/Sent: block also heads the quote of a reply: only a forward subject
    makes it a forward."""
    msg = parsed("RE: Printer on fire", OUTLOOK)
    assert not is_forward(msg) and forwarded(msg) is None


def test_a_marker_makes_a_forward_whatever_the_subject() -> None:
    assert is_forward(parsed("Printer on fire", THUNDERBIRD))
    assert not is_forward(parsed("Printer on fire", "Help, it is burning."))


def test_a_forward_without_a_readable_sender() -> None:
    found = forwarded(parsed("Fwd: notes", "just some text"))
    assert found is not None
    assert found.original_from == "" and found.original_text == "just some text"


def test_requester_command() -> None:
    assert requester_command("\n#requester carol@example.org\nbelow\n") == (
        "carol@example.org",
        "below",
    )
    assert requester_command("# Requester: Carol <carol@example.org>\n")[0] == (
        "Carol <carol@example.org>"
    )
    assert requester_command("Hello\n#requester carol@example.org") == (
        None,
        "Hello\n#requester carol@example.org",
    )


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("carol@example.org", "carol@example.org"),
        ("Carol <Carol@Example.ORG>", "carol@example.org"),
        ("carol at example.org", None),
        ("carol@localhost", None),
        ("a@example.org, b@example.org", None),
        ("", None),
    ],
)
def test_requester_address(value: str, address: str | None) -> None:
    assert requester_address(value) == address


def test_inside_the_desk_domains() -> None:
    domains = frozenset({"example.com"})
    assert inside("bob@example.com", domains) and inside("x@it.example.com", domains)
    assert not inside("carol@example.org", domains) and not inside("x@badexample.com", domains)
