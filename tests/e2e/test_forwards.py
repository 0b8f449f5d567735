"""Forwards, end to end over SMTP on both databases (docs/agents.md, "Forwards").

An agent proven by a trusted Authentication-Results pass forwards a customer's mail and
opens the ticket in the customer's name; a colleague's forward of a ticket's mail opens
a new ticket linked to it and leaves the old one alone; an agent's mail that nothing
proves theirs is kept, not relayed, and they are told; nobody gets a relay of their own
mail, and a watcher's reply-all joins the conversation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.agents import ALICE, CAROL, Mailbox, events, open_ticket, plain_reply, reply
from tests.conftest import Desk, Sink, mail, running_desk, wait_until

TRUST = '[security]\ntrusted_authserv_ids = ["mx.example.com"]\n'
POSTFIX = (
    b"Received: from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.com"
    b" (Postfix) with ESMTPS id 4Xy9; Tue, 1 Dec 2026 20:00:00 +0000\r\n"
    b"Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n"
)
DAVE = "dave@customer.example"
EVE = "eve@example.org"
FORWARD = """\
Dave called about this too; P2 please.

---------- Forwarded message ---------
From: Dave Customer <dave@customer.example>
Date: Tue, 1 Dec 2026 at 09:00
Subject: VPN drops every hour
To: Alice Admin <alice@example.com>


The VPN drops every hour since Monday.
Dave
"""


@pytest.fixture
def desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    """The shared desk fixture, with mx.example.com's Authentication-Results trusted."""
    with running_desk(write_config(db_url, sink.port, extra=TRUST), sink) as d:
        yield d


def _send(desk: Desk, msg: EmailMessage, *, proven: bool, sender: str = ALICE) -> None:
    """Send `msg` to the plain support address, with the border server's passing trace on
    top when `proven`."""
    trace = POSTFIX if proven else b""
    desk.send(trace + msg.as_bytes(policy=policy.SMTP), mail_from=sender)


def _forward(body: str = FORWARD, subject: str = "Fwd: VPN drops every hour") -> EmailMessage:
    return mail(subject, body, sender=f"Alice Admin <{ALICE}>")


def _inbound(ticket: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in ticket["messages"] if m["direction"] == "in"]


def test_an_agents_forward_opens_the_ticket_for_the_customer(desk: Desk) -> None:
    dave, alice = Mailbox(desk, DAVE), Mailbox(desk, ALICE)
    _send(desk, _forward(), proven=True)

    [ticket] = desk.wait_tickets(1)
    assert ticket["requester"] == DAVE and ticket["subject"] == "VPN drops every hour"
    detail = desk.ticket(ticket["ref"])
    first, note = _inbound(detail)
    assert (first["from"], first["internal"]) == (DAVE, False)
    assert first["body_text"] == "The VPN drops every hour since Monday.\nDave"
    assert (note["from"], note["internal"], note["kind"]) == (ALICE, True, "note")
    assert note["body_text"] == "Dave called about this too; P2 please."
    [created] = events(desk, ticket["ref"], "created")
    assert created["actor"] == ALICE
    [behalf] = events(desk, ticket["ref"], "opened_on_behalf")
    assert behalf["actor"] == ALICE and behalf["data"]["requester"] == DAVE
    [ack] = [
        e for e in events(desk, ticket["ref"], "notification_suppressed")
        if e["data"]["notification"] == "acknowledgement"
    ]  # fmt: skip
    assert "acknowledge_forwarded = false" in ack["data"]["reason"]
    assert dave.nothing_new() and alice.nothing_new()  # alice opened it: no notice to her


def test_requester_command_and_acknowledge_forwarded(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    extra = TRUST + "[notify]\nacknowledge_forwarded = true\n"
    with running_desk(write_config(db_url, sink.port, extra=extra), sink) as desk:
        dave = Mailbox(desk, DAVE)
        body = f"#requester Dave Customer <{DAVE}>\n\nDave phoned: his VPN drops every hour."
        _send(desk, mail("VPN drops", body, sender=ALICE), proven=True)

        [ack] = dave.next()
        [ticket] = desk.wait_tickets(1)
        assert ticket["requester"] == DAVE and ticket["ref"] in str(ack["Subject"])
        [first] = _inbound(desk.ticket(ticket["ref"]))
        assert first["body_text"] == "Dave phoned: his VPN drops every hour."
        assert first["internal"] is False


def test_a_bad_requester_command_is_an_error_mail(desk: Desk) -> None:
    alice = Mailbox(desk, ALICE)
    _send(desk, mail("VPN", "#requester dave at customer\n\nHis VPN drops.", sender=ALICE),
          proven=True)  # fmt: skip

    [error] = alice.next()
    assert "Commands not applied" in str(error["Subject"])
    assert "#requester dave at customer: not a mail address" in error.get_content()
    [ticket] = desk.wait_tickets(1)
    assert ticket["requester"] == ALICE
    [kept] = _inbound(desk.ticket(ticket["ref"]))
    assert kept["internal"] is True
    assert alice.nothing_new()  # no acknowledgement besides the error


def test_an_unproven_agent_forward_is_ordinary_mail(desk: Desk) -> None:
    dave = Mailbox(desk, DAVE)
    _send(desk, _forward(), proven=False)

    [ticket] = desk.wait_tickets(1)
    assert ticket["requester"] == ALICE  # the forwarder, as for anyone's forward
    assert not events(desk, ticket["ref"], "opened_on_behalf")
    assert dave.nothing_new()


def test_an_internal_forward_is_the_agents_own_ticket(desk: Desk) -> None:
    """The forwarded mail's sender is inside the desk's domains: no customer to act for."""
    body = FORWARD.replace("dave@customer.example", "bob@example.com")
    _send(desk, _forward(body), proven=True)
    [ticket] = desk.wait_tickets(1)
    assert ticket["requester"] == ALICE


def test_a_colleagues_forward_of_a_resolved_ticket_opens_a_linked_ticket(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
    reply(desk, opened.notice, "#status resolved")
    alice.next()  # the receipt
    [resolved] = carol.next()
    eve = Mailbox(desk, EVE)

    # Carol's colleague forwards the resolved notice; the client kept its headers.
    fwd = mail(
        f"Fwd: {resolved['Subject']}",
        f"Our printer is on fire again.\n\n-------- Forwarded Message --------\n"
        f"Subject: {resolved['Subject']}\nFrom: Test Desk <support@example.com>\n\n"
        f"{resolved.get_content()}",
        sender=f"Eve Colleague <{EVE}>",
        in_reply_to=str(resolved["Message-ID"]),
        references=str(resolved["Message-ID"]),
    )
    desk.send(fwd)

    [old, new] = sorted(desk.wait_tickets(2), key=lambda t: t["id"])
    assert new["requester"] == EVE
    assert old["status"] == "resolved"
    old_detail = desk.ticket(opened.ref)
    assert all(m["from"] != EVE for m in old_detail["messages"])  # nothing appended
    assert not events(desk, opened.ref, "reopened") and not events(desk, opened.ref, "stranger")
    assert {"ticket": new["ref"], "relation": "related"} in old_detail["links"]
    [linked] = events(desk, new["ref"], "linked")
    assert "a forward is a new conversation" in linked["data"]["reason"]
    [notice] = alice.next()  # the new ticket's notice, not a reopen of the old one
    assert new["ref"] in str(notice["Subject"]) and opened.ref not in str(notice["Subject"])
    [ack] = eve.next()
    assert new["ref"] in str(ack["Subject"])
    assert carol.nothing_new() and alice.nothing_new()


def test_a_strangers_reply_is_still_kept_as_a_strangers_message(desk: Desk) -> None:
    """Not a forward: the stranger's reply stays on the ticket, changing nothing."""
    opened = open_ticket(desk)
    alice = Mailbox(desk, ALICE)
    plain_reply(desk, opened.ack, "Me too!", sender=EVE)
    [notice] = alice.next()
    assert f"WARNING: {EVE} is not on {opened.ref}" in notice.get_content()
    assert len(desk.tickets()) == 1


def test_the_unproven_agent_gets_the_notice(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)

    # Alice answers the requester's acknowledgement from her own mail client, to the
    # plain support address: no agent token, no trusted pass.
    plain_reply(desk, opened.ack, "#status resolved\nDone, the printer is replaced.",
                sender=ALICE, to="support@example.com")  # fmt: skip

    got = alice.next(2)
    [told] = [m for m in got if "Not relayed" in str(m["Subject"])]
    text = " ".join(told.get_content().split())
    assert "nothing was sent to the requester" in text
    assert "because it has neither this ticket's agent reply token" in text
    assert told["To"] == ALICE and "support+" in str(told["Reply-To"])
    assert desk.ticket(opened.ref)["status"] != "resolved"
    assert carol.nothing_new()


def test_an_agent_forwarding_their_notice_keeps_it_internal(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
    notice = opened.notice
    fwd = mail(
        f"Fwd: {notice['Subject']}",
        f"FYI\n\n-------- Forwarded Message --------\nSubject: {notice['Subject']}\n"
        f"From: Test Desk <support@example.com>\n\n{notice.get_content()}",
        sender=ALICE,
    )
    _send(desk, fwd, proven=False)

    [told] = alice.next()
    assert "Not relayed" in str(told["Subject"])
    wait_until(lambda: events(desk, opened.ref, "notice_kept_internal"))
    [kept] = [m for m in _inbound(desk.ticket(opened.ref)) if m["subject"] == fwd["Subject"]]
    assert kept["internal"] is True
    assert len(desk.tickets()) == 1  # not a ticket of its own either
    assert carol.nothing_new()


def test_no_copy_of_ones_own_mail(desk: Desk) -> None:
    # Alice writes to the desk as anyone would (she is its requester), Cc Dave.
    opened = open_ticket(desk, sender=f"Alice Admin <{ALICE}>", cc=DAVE)
    dave, alice = Mailbox(desk, DAVE), Mailbox(desk, ALICE)
    code, out = desk.cli("ticket", "reply", opened.ref, "--as", "alice", "-m", "Fixed it.")
    assert code == 0, out

    [relayed] = dave.next()
    assert relayed["To"] == DAVE and "Fixed it." in relayed.get_content()
    assert ALICE not in str(relayed.get("Cc", ""))
    assert alice.nothing_new()


def test_a_requester_ccing_themselves_gets_one_copy(desk: Desk) -> None:
    opened = open_ticket(desk, cc=CAROL)
    carol = Mailbox(desk, CAROL)
    assert desk.ticket(opened.ref)["watchers"] == []
    reply(desk, opened.notice, "Please restart it.")
    [relayed] = carol.next()
    assert relayed.get("Cc") is None
    assert carol.nothing_new()


def test_a_watchers_reply_all_is_appended(desk: Desk) -> None:
    opened = open_ticket(desk, cc=DAVE)
    carol, dave, alice = Mailbox(desk, CAROL), Mailbox(desk, DAVE), Mailbox(desk, ALICE)
    reply(desk, opened.notice, "Please restart it.")
    [relayed] = carol.next()
    dave.next()

    plain_reply(desk, relayed, "Restarted, still burning.", sender=DAVE,
                headers={"Cc": CAROL})  # fmt: skip

    [notice] = alice.next()
    assert "Restarted, still burning." in notice.get_content()
    assert len(desk.tickets()) == 1
    [event] = [e for e in events(desk, opened.ref, "message") if e["actor"] == DAVE]
    assert event["data"]["sender"] == "watcher"
    assert dave.nothing_new() and carol.nothing_new()


def test_the_not_relayed_notice_is_rate_limited(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    extra = "[notify]\nauto_replies_per_hour = 1\n"
    with running_desk(write_config(db_url, sink.port, extra=extra), sink) as desk:
        opened = open_ticket(desk)
        alice = Mailbox(desk, ALICE)
        for text in ("First try.", "Second try."):
            plain_reply(desk, opened.ack, text, sender=ALICE, to="support@example.com")
        wait_until(lambda: len(events(desk, opened.ref, "sender_unverified")) == 2)

        got = alice.next(3)  # two warnings to the queue's agent, one notice to the writer
        assert len([m for m in got if "Not relayed" in str(m["Subject"])]) == 1
        [held] = [
            e for e in events(desk, opened.ref, "notification_suppressed")
            if e["data"]["notification"] == "reply_not_relayed"
        ]  # fmt: skip
        assert "rate limit: 1 reply_not_relayed notices" in held["data"]["reason"]
        assert alice.nothing_new()
