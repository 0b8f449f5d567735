"""Agent tokens out of relayed attachments, quoted notices found (maildesk.notify.scrub)."""

from __future__ import annotations

import base64

from maildesk.notify.scrub import quoted_notice_problems, scrub_attachment

TOKEN = "42-a0123456789abcdef0123"
ADDRESS = f"support+{TOKEN}@example.com"


def test_plus_addresses_with_an_agent_token_become_the_plain_address() -> None:
    text = f"Reply-To: {ADDRESS}\nthreads: support+42-r0123456789abcdef0123@example.com\n"
    cleaned = scrub_attachment("notes.txt", "text/plain", text.encode())
    assert cleaned == (
        b"Reply-To: support@example.com\nthreads: support+42-r0123456789abcdef0123@example.com\n"
    )


def test_a_token_hidden_in_an_encoded_part_of_an_attached_message_refuses_it() -> None:
    inner = base64.b64encode(f"write to {ADDRESS}".encode()).decode()
    eml = (
        "From: a@example.org\nSubject: x\nContent-Type: text/plain\n"
        f"Content-Transfer-Encoding: base64\n\n{inner}\n"
    ).encode()
    assert scrub_attachment("old.eml", "message/rfc822", eml) is None
    assert scrub_attachment(f"{TOKEN}.pdf", "application/pdf", b"%PDF") is None
    assert scrub_attachment("driver.pdf", "application/pdf", b"%PDF") == b"%PDF"


def test_quoted_notice_lines_are_named() -> None:
    notice = "New ticket MD-42 in queue it.\n\nHelp.\n-- maildesk notice MD-42 0a1b2c3d --\n"
    text = f"My answer.\n\n> New ticket MD-42 in queue it.\nWrite to {ADDRESS}."
    problems = quoted_notice_problems(text, [notice])
    assert [p.split(" ", 2)[:2] for p in problems] == [["line", "3"], ["line", "4:"]]
    assert quoted_notice_problems("My answer.", [notice]) == []
    marker_only = quoted_notice_problems("-- maildesk notice MD-42 0a1b2c3d --", [])
    assert "quotes a notice" in marker_only[0]


def test_a_token_split_over_encoded_words_in_two_charsets_refuses_it() -> None:
    """Adjacent encoded-words join without a space (RFC 2047 6.2), whatever their charsets:
    a token split across two of them is still found."""
    head, tail = TOKEN[:10], TOKEN[10:]
    first = base64.b64encode(f"Antwort für {head}".encode("iso-8859-1")).decode()
    second = base64.b64encode(tail.encode()).decode()
    eml = (
        f"From: a@example.org\nSubject: =?iso-8859-1?b?{first}?= =?us-ascii?b?{second}?=\n"
        "Content-Type: text/plain\n\nnothing here\n"
    ).encode()
    assert scrub_attachment("old.eml", "message/rfc822", eml) is None
