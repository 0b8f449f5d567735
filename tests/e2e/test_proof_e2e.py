"""A forged agent mail does not act, end to end: trusted Authentication-Results over SMTP.

Each test runs a real desk (SQLite and PostgreSQL) that trusts mx.example.com's
Authentication-Results, and sends a mail claiming agent alice's From to the plain support
address, answering the requester's thread with a command. It acts only when the trusted
header sits where the border server writes it and says pass; every forged shape is kept
as a requester-side message flagged sender_unverified, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email import policy
from pathlib import Path

import pytest

from tests.agents import ALICE, CAROL, Mailbox, Opened, events, open_ticket
from tests.conftest import Desk, Sink, mail, running_desk

TRUST = '[security]\ntrusted_authserv_ids = ["mx.example.com"]\n'
POSTFIX = (
    b"Received: from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.com"
    b" (Postfix) with ESMTPS id 4Xy9; Tue, 1 Dec 2026 20:00:00 +0000\r\n"
)
EXIM = (
    b"Received: from mail.example.com ([192.0.2.1]) by mx.example.com with esmtps"
    b" (Exim 4.97) id 1tX; Tue, 1 Dec 2026 20:00:00 +0000\r\n"
)
PASS = b"Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n"


@pytest.fixture
def desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    """The shared desk fixture, with mx.example.com's Authentication-Results trusted."""
    with running_desk(write_config(db_url, sink.port, extra=TRUST), sink) as d:
        yield d


def agent_mail(opened: Opened, trace: bytes = b"", tail: bytes = b"") -> bytes:
    """Alice's From, answering the requester's thread: `trace` on top, `tail` at the end
    of the header block."""
    msg = mail(
        f"Re: [{opened.ref}] Printer on fire",
        "#priority P1\nWe are on it.",
        sender=f"Alice Admin <{ALICE}>",
        in_reply_to=str(opened.ack["Message-ID"]),
    )
    head, _, body = msg.as_bytes(policy=policy.SMTP).partition(b"\r\n\r\n")
    return trace + head + b"\r\n" + tail + b"\r\n" + body


@pytest.mark.parametrize(
    ("trace", "tail"),
    [
        # The MTA copied the envelope sender into a comment of its own header; read
        # decoded, the encoded-word closes the comment and shows a dmarc=pass ahead of
        # the server's real dmarc=fail.
        pytest.param(
            POSTFIX + b"Authentication-Results: mx.example.com; spf=fail (sender =?utf-8?q?x"
            b"=29=3B_dmarc=3Dpass_header.from=3Dexample.com_=28?= not permitted)"
            b" smtp.mailfrom=evil.example;\r\n\tdmarc=fail header.from=example.com\r\n",
            b"",
            id="encoded-word-in-the-trusted-header",
        ),
        # The trusted server's header cannot be read: no proof, not "look further down".
        pytest.param(
            POSTFIX
            + b"Authentication-Results: mx.example.com; dmarc=pass (unclosed comment\r\n"
            + PASS,
            b"",
            id="unreadable-trusted-header",
        ),
        # Below the border server's trace, among the sender's own headers.
        pytest.param(POSTFIX, PASS, id="among-the-senders-headers"),
        # The mail never passed the border server (no Received line of it).
        pytest.param(PASS, b"", id="no-received-line-of-the-server"),
    ],
)
def test_a_forged_trusted_header_does_not_act(desk: Desk, trace: bytes, tail: bytes) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)

    raw = agent_mail(opened, trace, tail)
    desk.send(raw, mail_from=ALICE)

    # The real alice is told, with a warning, and that her mail was not relayed.
    [warned] = [m for m in alice.next(2) if "Not relayed" not in str(m["Subject"])]
    assert "WARNING: From claims agent alice@example.com" in warned.get_content()
    detail = desk.ticket(opened.ref)
    assert detail["priority"] == "P3"  # the command did not run
    [flag] = events(desk, opened.ref, "sender_unverified")
    assert "trusted Authentication-Results pass" in flag["data"]["reason"]
    assert carol.nothing_new()  # never relayed
    assert any("#priority P1" in m["body_text"] for m in detail["messages"])


@pytest.mark.parametrize(
    "trace",
    [
        pytest.param(POSTFIX + PASS, id="postfix-milter-below-its-received"),
        pytest.param(PASS + EXIM, id="exim-at-start-above-its-received"),
    ],
)
def test_the_border_servers_own_pass_acts(desk: Desk, trace: bytes) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)

    desk.send(agent_mail(opened, trace), mail_from=ALICE)

    [relayed] = carol.next()
    assert "We are on it." in relayed.get_content()
    assert desk.ticket(opened.ref)["priority"] == "P1"
    [event] = [e for e in events(desk, opened.ref, "message") if e["actor"] == ALICE]
    assert event["data"]["proof"] == "dmarc=pass by mx.example.com"
    assert not events(desk, opened.ref, "sender_unverified")
