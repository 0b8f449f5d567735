"""The new text of a reply: quoted history and signatures stripped (maildesk.parse.reply)."""

from __future__ import annotations

from pathlib import Path
from string import Template

import pytest

from maildesk.parse.parser import parse_message
from maildesk.parse.reply import new_text

REPLIES = Path(__file__).resolve().parents[1] / "data" / "replies"
NEW = "#priority P2\nI have restarted the spooler; please try again."


def client_reply(name: str, new: str = NEW, **values: str) -> bytes:
    """A fixture from tests/data/replies filled in; CRLF line ends as clients send them."""
    defaults = {
        "FROM": "alice@example.com",
        "TO": "support+1-a00000000000000000000@example.com",
        "SUBJECT": "[MD-1] New ticket: Printer on fire",
        "IN_REPLY_TO": "<notice@example.com>",
        "REFERENCES": "<p1@client.example.org> <notice@example.com>",
        "NONCE": "0",
        "NEW": new,
    }
    text = Template((REPLIES / name).read_text(encoding="utf-8")).substitute({**defaults, **values})
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("latin-1")


CLIENTS = sorted(p.name for p in REPLIES.glob("*.eml"))


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_style_keeps_only_the_new_text(client: str) -> None:
    msg = parse_message(client_reply(client))
    assert new_text(msg.body_text) == NEW


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Rebooted.\n\n-- \nAlice Admin | IT\n+49 30 1234", "Rebooted."),
        ("Rebooted.\n\nBest regards,\nAlice", "Rebooted."),
        ("Erledigt.\n\nMit freundlichen Grüßen\nAlice", "Erledigt."),
        ("Fixed.\n\nSent from my iPhone", "Fixed."),
        ("Done.\n\n> quoted\n> more quoted\n", "Done."),
        ("Look:\n>From the logs it is the spooler.", "Look:\n>From the logs it is the spooler."),
        ("Steps:\n- reboot\n- reinstall\n\nOn Mon, X wrote:\n> a", "Steps:\n- reboot\n- reinstall"),
        # A closing phrase that begins a sentence is text, not a signature.
        (
            "Hi,\nThanks, but the printer still fails with this error:\nerror 42\nsee log",
            "Hi,\nThanks, but the printer still fails with this error:\nerror 42\nsee log",
        ),
        # Bottom-posting: the quote and its attribution above the answer go.
        (
            "On Sun, Nov 22, 2026 at 10:00AM, Test Desk wrote:\n> New ticket.\n> Help.\n\n"
            "#priority P2\nMy answer.\n\n-- \nAlice",
            "#priority P2\nMy answer.",
        ),
        ("Test Desk wrote:\n> New ticket.\n\nMy answer.", "My answer."),
        ("> New ticket.\n> Help.\n\nMy answer.", "My answer."),
        # Inline answers between quotes are kept.
        ("> Is it on?\nYes.\n> Cable?\nPlugged in.", "> Is it on?\nYes.\n> Cable?\nPlugged in."),
        ("", ""),
    ],
)
def test_stripping(body: str, expected: str) -> None:
    assert new_text(body) == expected


def test_a_forward_keeps_what_it_forwards() -> None:
    body = (
        "See the error below.\n\n---------- Forwarded message ---------\n"
        "From: Printer <printer@example.org>\nDate: Sun, 22 Nov 2026\nSubject: Error\n\n"
        "Toner low."
    )
    assert new_text(body) == body


def test_the_notice_marker_ends_the_new_text() -> None:
    body = (
        "My answer.\n\nNew ticket MD-1 in queue it.\n\nHelp, it is burning.\n\n-- \n"
        "Reply to this message to answer the requester.\n-- maildesk notice MD-1 0a1b2c3d --\n"
        "---------- Forwarded message ---------\nFrom: Carol <carol@example.org>\n\nmore"
    )
    # Cut at the marker: the forward below it is gone (the notice above is caught later).
    assert new_text(body) == "My answer.\n\nNew ticket MD-1 in queue it.\n\nHelp, it is burning."


def test_a_quoted_notice_marker_leaves_the_answer_below_it() -> None:
    body = (
        "Test Desk wrote:\n> New ticket MD-1 in queue it.\n> -- maildesk notice MD-1 0a1b2c3d --"
        "\n\nMy answer."
    )
    assert new_text(body) == "My answer."
