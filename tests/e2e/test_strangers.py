"""Mail from someone not on a ticket, and whose CCs become watchers (end to end).

A Message-ID or a requester token can leak (a forwarded mail, a mailing list), so mail
that threads into a ticket from an address that is not its requester, a watcher or an
agent is kept on the ticket as a stranger's message: flagged, the agents told, nothing
changed and nothing sent to the stranger. Watchers come only from the requester's proven
mail, and one an agent removed stays removed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.agents import (
    ALICE,
    CAROL,
    Mailbox,
    Opened,
    events,
    open_ticket,
    plain_reply,
    reply,
)
from tests.conftest import Desk, Sink, mail, running_desk, wait_until

MALLORY = "mallory@evil.example.net"


def _stranger_mail(
    answering: EmailMessage, *, subject: str | None = None, **kw: str
) -> EmailMessage:
    """A stranger who got hold of one of the ticket's mails answers it, to the plain
    support address (or wherever `to` says)."""
    return mail(
        subject or f"Re: {answering['Subject']}",
        "Reopen this, and send me everything.",
        sender=f"Mallory <{MALLORY}>",
        in_reply_to=str(answering["Message-ID"]),
        **kw,
    )


def _stranger_message(desk: Desk, ref: str) -> dict[str, object]:
    def found() -> list[dict[str, object]]:
        return [m for m in desk.ticket(ref)["messages"] if m["from"] == MALLORY]

    [msg] = wait_until(found)
    return msg


def _resolve(desk: Desk, opened: Opened, status: str = "resolved") -> EmailMessage:
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
    reply(desk, opened.notice, f"#status {status}")
    alice.next()  # the receipt
    if status == "resolved":
        [notice] = carol.next()
        return notice
    wait_until(lambda: desk.ticket(opened.ref)["status"] == status)
    return opened.ack


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_stranger_with_a_leaked_message_id_cannot_reopen(desk: Desk, status: str) -> None:
    opened = open_ticket(desk)
    leaked = _resolve(desk, opened, status)
    carol, alice, mallory = Mailbox(desk, CAROL), Mailbox(desk, ALICE), Mailbox(desk, MALLORY)

    desk.send(_stranger_mail(leaked))

    [notice] = alice.next()  # the agents are told, with the flag
    text = notice.get_content()
    assert f"WARNING: {MALLORY} is not on {opened.ref}" in text
    assert "Reopen this" in text
    assert f"Your reply goes to: {CAROL} (requester)" in text
    assert "Reopened" not in str(notice["Subject"])
    detail = desk.ticket(opened.ref)
    assert detail["status"] == status
    assert not events(desk, opened.ref, "reopened")
    [flag] = events(desk, opened.ref, "stranger")
    assert flag["actor"] == MALLORY and "not its requester" in flag["data"]["reason"]
    [event] = [e for e in events(desk, opened.ref, "message") if e["actor"] == MALLORY]
    assert event["data"]["sender"] == "stranger"
    assert _stranger_message(desk, opened.ref)["kind"] == "mail"
    assert len(desk.tickets()) == 1  # no ticket of their own either
    assert mallory.nothing_new() and carol.nothing_new()


def test_stranger_cannot_open_a_pending_ticket(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
    reply(desk, opened.notice, "I have restarted the spooler.")
    [relayed] = carol.next()
    assert desk.ticket(opened.ref)["status"] == "pending"
    mallory = Mailbox(desk, MALLORY)

    # Answered on a list it was posted to: no subject tag, only the In-Reply-To of the
    # relay. (A forward would open a linked ticket: tests/e2e/test_forwards.py.)
    desk.send(_stranger_mail(relayed, subject="Re: spooler"))

    [notice] = alice.next()
    assert f"WARNING: {MALLORY} is not on {opened.ref}" in notice.get_content()
    assert desk.ticket(opened.ref)["status"] == "pending"
    assert _stranger_message(desk, opened.ref)
    assert mallory.nothing_new() and carol.nothing_new()


def test_stranger_holding_the_requester_token_changes_nothing(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    reply(desk, opened.notice, "I have restarted the spooler.")
    [relayed] = carol.next()
    mallory, alice = Mailbox(desk, MALLORY), Mailbox(desk, ALICE)

    # The requester's reply address (its token) leaked; no In-Reply-To, no subject tag.
    msg = mail(
        "hello",
        "Add my friend.",
        sender=MALLORY,
        to=str(relayed["Reply-To"]),
        headers={"Cc": "eve@evil.example.net"},
    )
    desk.send(msg)

    [notice] = alice.next()
    assert f"WARNING: {MALLORY} is not on {opened.ref}" in notice.get_content()
    detail = desk.ticket(opened.ref)
    assert detail["status"] == "pending" and detail["watchers"] == []
    assert _stranger_message(desk, opened.ref)
    assert mallory.nothing_new() and Mailbox(desk, "eve@evil.example.net").nothing_new()


def test_stranger_past_the_reopen_window_gets_no_ticket_and_no_mail(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    start = datetime.now(UTC)
    offset = [timedelta(0)]
    with running_desk(
        write_config(db_url, sink.port), sink, clock=lambda: start + offset[0]
    ) as desk:
        opened = open_ticket(desk)
        leaked = _resolve(desk, opened)
        mallory, alice = Mailbox(desk, MALLORY), Mailbox(desk, ALICE)
        offset[0] = timedelta(days=15)  # past the 14-day window

        desk.send(_stranger_mail(leaked))

        notice = next(m for m in alice.next() if f"WARNING: {MALLORY} is not on" in m.get_content())
        assert opened.ref in str(notice["Subject"])
        assert _stranger_message(desk, opened.ref)
        assert len(desk.tickets()) == 1
        assert desk.ticket(opened.ref)["status"] == "resolved"
        assert mallory.nothing_new()


def test_subject_only_stranger_with_append_joins_flagged_without_reopening(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    append = '[threading]\nsubject_ref_from_strangers = "append"\n'
    with running_desk(write_config(db_url, sink.port, extra=append), sink) as desk:
        opened = open_ticket(desk)
        _resolve(desk, opened)
        alice, mallory = Mailbox(desk, ALICE), Mailbox(desk, MALLORY)
        desk.send(mail(f"Re: [{opened.ref}] Printer on fire", "Me too.", sender=MALLORY))
        [notice] = alice.next()
        assert f"WARNING: {MALLORY} is not on {opened.ref}" in notice.get_content()
        assert _stranger_message(desk, opened.ref)
        assert desk.ticket(opened.ref)["status"] == "resolved"
        assert len(desk.tickets()) == 1
        assert mallory.nothing_new()


def test_requester_from_with_only_a_message_id_adds_no_watchers(desk: Desk) -> None:
    opened = open_ticket(desk)
    # From the requester's address (anyone can type it), In-Reply-To of our mail, but to the
    # plain support address: no requester token, no trusted pass.
    msg = mail(
        f"Re: {opened.ack['Subject']}",
        "Adding a colleague.",
        sender=CAROL,
        in_reply_to=str(opened.ack["Message-ID"]),
        headers={"Cc": f"Mallory <{MALLORY}>"},
    )
    desk.send(msg)
    [held] = wait_until(lambda: events(desk, opened.ref, "watchers_not_added"))
    assert held["data"]["addresses"] == [MALLORY]
    assert "In-Reply-To" in held["data"]["reason"]
    assert desk.ticket(opened.ref)["watchers"] == []
    # It is still the requester's message on the ticket.
    assert any(
        m["body_text"].startswith("Adding a colleague") for m in desk.ticket(opened.ref)["messages"]
    )


@pytest.mark.parametrize(
    ("header", "added"),
    [
        ("mx.example.com; dmarc=pass header.from=example.org", True),
        ("mx.example.com; dmarc=fail header.from=example.org", False),
        ("evil.example.net; dmarc=pass header.from=example.org", False),  # not trusted
    ],
)
def test_requester_proven_by_authentication_results_adds_watchers(
    db_url: str, sink: Sink, write_config: Callable[..., Path], header: str, added: bool
) -> None:
    trust = '[security]\ntrusted_authserv_ids = ["mx.example.com"]\n'
    with running_desk(write_config(db_url, sink.port, extra=trust), sink) as desk:
        opened = open_ticket(desk)
        msg = mail(
            f"Re: {opened.ack['Subject']}",
            "Adding a colleague.",
            sender=CAROL,
            in_reply_to=str(opened.ack["Message-ID"]),
            headers={"Cc": "Erin <erin@example.org>"},
        )
        # As the border server writes it: its Received line, its milter's header below.
        trace = (
            "Received: from mail.example.org ([192.0.2.9]) by mx.example.com (Postfix)"
            " with ESMTPS id 4Xz1; Tue, 1 Dec 2026 20:00:00 +0000\r\n"
            f"Authentication-Results: {header}\r\n"
        ).encode()
        desk.send(trace + msg.as_bytes(policy=policy.SMTP), mail_from=CAROL)
        kind = "watchers" if added else "watchers_not_added"
        wait_until(lambda: [e for e in events(desk, opened.ref, kind) if e["actor"] == CAROL])
        assert desk.ticket(opened.ref)["watchers"] == (["erin@example.org"] if added else [])


def test_a_removed_watcher_stays_removed_until_an_agent_adds_them(desk: Desk) -> None:
    opened = open_ticket(desk, cc="Dave <dave@example.org>")
    assert desk.ticket(opened.ref)["watchers"] == ["dave@example.org"]
    alice = Mailbox(desk, ALICE)
    reply(desk, opened.notice, "#cc -dave@example.org")
    alice.next()
    assert desk.ticket(opened.ref)["watchers"] == []

    # The requester's own proven reply (to their reply token) CCs them again.
    plain_reply(desk, opened.ack, "Dave again.", sender=CAROL, headers={"Cc": "dave@example.org"})
    [held] = wait_until(lambda: events(desk, opened.ref, "watchers_not_added"))
    assert held["data"]["addresses"] == ["dave@example.org"]
    assert "removed by an agent" in held["data"]["reason"]
    assert desk.ticket(opened.ref)["watchers"] == []
    alice.next()  # the notice of Carol's reply

    reply(desk, opened.notice, "#cc +dave@example.org")
    alice.next()
    assert desk.ticket(opened.ref)["watchers"] == ["dave@example.org"]


def test_every_agent_notice_says_who_gets_the_reply(desk: Desk) -> None:
    opened = open_ticket(desk, cc="Dave <dave@example.org>")
    line = f"Your reply goes to: {CAROL} (requester), Cc dave@example.org"
    assert line in opened.notice.get_content()  # the new-ticket notice
    alice = Mailbox(desk, ALICE)
    plain_reply(desk, opened.ack, "Still burning.", sender=CAROL)
    [notice] = alice.next()  # the requester's reply
    assert line in notice.get_content()
    reply(desk, opened.notice, "#priority P2")
    [receipt] = alice.next()
    assert line in receipt.get_content()
