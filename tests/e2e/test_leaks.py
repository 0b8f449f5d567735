"""Nothing agent-side reaches a requester: Message-IDs, agent tokens, notes, quoted notices.

End to end on a real desk (SQLite and PostgreSQL), mail over real SMTP in and out: an agent
answers a notice by mail, and what the requester receives is read from the sink.
"""

from __future__ import annotations

import random
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from maildesk.mail.render import mint_message_id
from tests.agents import ALICE, CAROL, Mailbox, events, open_ticket, received, reply
from tests.conftest import Desk, mail, wait_until

NEW = "I have restarted the spooler; please try again."
AGENT_TOKEN = re.compile(rb"\d{1,18}-a[0-9a-f]{20}")


def decoded(msg: EmailMessage) -> bytes:
    """Everything a requester's mail client can show of `msg`: raw bytes, every decoded
    part, and inside attached messages (.eml files) every decoded part of those too."""
    out = [msg.as_bytes()]
    for part in msg.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            out.append(payload)
            if str(part.get_filename() or "").endswith(".eml"):
                inner = message_from_bytes(payload, policy=policy.default)
                out.append(decoded(inner))  # type: ignore[arg-type]
    return b"\n".join(out)


def test_minted_message_ids_do_not_come_from_pythons_random() -> None:
    random.seed(4711)
    predicted = random.getrandbits(64)
    random.seed(4711)
    minted = mint_message_id("example.com", "MD-42")
    assert str(predicted) not in minted
    assert re.fullmatch(r"<[0-9a-f]{32}\.MD-42@example\.com>", minted), minted
    assert mint_message_id("example.com", "MD-42") != minted


def test_acknowledgement_message_ids_are_unguessable(desk: Desk) -> None:
    opened = open_ticket(desk)
    for sent in (opened.ack, opened.notice):
        assert re.fullmatch(rf"<[0-9a-f]{{32}}\.{opened.ref}@example\.com>", sent["Message-ID"])


def test_every_agent_notice_ends_with_its_own_marker_line(desk: Desk) -> None:
    first, second = open_ticket(desk), open_ticket(desk, "VPN broken")
    markers = [n.get_content().rstrip().splitlines()[-1] for n in (first.notice, second.notice)]
    for opened, marker in zip((first, second), markers, strict=True):
        assert re.fullmatch(rf"-- maildesk notice {opened.ref} [0-9a-f]{{8}} --", marker)
    assert "maildesk notice" not in first.ack.get_content()  # requesters never see one


def _reply_with(opened_notice: EmailMessage, how: str) -> EmailMessage:
    msg = mail(
        f"Re: {opened_notice['Subject']}",
        NEW,
        sender=f"Alice Admin <{ALICE}>",
        to=str(opened_notice["Reply-To"]),
        in_reply_to=str(opened_notice["Message-ID"]),
    )
    if how == "message/rfc822":
        # The agent's own earlier mail to the desk, attached: its To is the agent address.
        earlier = mail(
            "Re: printer", "Earlier answer.", sender=ALICE, to=str(opened_notice["Reply-To"])
        )
        msg.add_attachment(earlier)  # as a mail client attaches a message
    elif how == ".eml":
        msg.add_attachment(
            opened_notice.as_bytes(),
            maintype="application",
            subtype="octet-stream",
            filename="notice.eml",
        )
    else:
        reply_to = str(opened_notice["Reply-To"])
        msg.add_attachment(f"Write to {reply_to} for help.\n", filename="howto.txt")
    return msg


@pytest.mark.parametrize("how", ["message/rfc822", ".eml", "text/plain"])
def test_an_attached_notice_never_gives_the_requester_the_agent_token(desk: Desk, how: str) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    token = str(opened.notice["Reply-To"]).partition("+")[2].partition("@")[0]
    assert AGENT_TOKEN.fullmatch(token.encode())

    msg = _reply_with(opened.notice, how)
    desk.send(msg, to=[str(opened.notice["Reply-To"])])

    [relayed] = carol.next()
    seen = decoded(relayed)
    assert token.encode() not in seen
    assert not AGENT_TOKEN.search(seen)
    [attachment] = list(relayed.iter_attachments())
    assert b"support@example.com" in attachment.get_payload(decode=True)  # the plain address


def test_relayed_mail_threads_under_public_mail_only(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
    reply(desk, opened.notice, NEW)
    [first] = carol.next()
    answer = mail(
        f"Re: {first['Subject']}",
        "Still broken.",
        sender=f"Carol Customer <{CAROL}>",
        to=str(first["Reply-To"]),
        in_reply_to=str(first["Message-ID"]),
        references=f"{first['References']} {first['Message-ID']}",
    )
    desk.send(answer)
    carol_notice = alice.next()[0]
    reply(desk, carol_notice, "Then please power-cycle it.")
    [second] = carol.next()

    detail = desk.ticket(opened.ref)
    internal = {m["message_id"] for m in detail["messages"] if m["internal"]}
    internal |= {m["message_id"] for m in detail["messages"] if m["kind"] == "agent_reply"}
    internal |= {opened.notice["Message-ID"], carol_notice["Message-ID"]}
    for relayed in (first, second):
        threading = f"{relayed['In-Reply-To']} {relayed['References']}"
        assert not [mid for mid in internal if mid in threading], threading
    assert second["In-Reply-To"] == answer["Message-ID"]


@pytest.mark.parametrize(
    "text",
    [
        "＃note the vendor says it is a firmware bug",
        "#ntoe the vendor says it is a firmware bug",
        "#internal the vendor says it is a firmware bug",
        "#private the vendor says it is a firmware bug",
        "#notes the vendor says it is a firmware bug",
        "Checked.\n\n＃Note: the vendor says it is a firmware bug",
        "Checked.\n\n#ntoe the vendor says it is a firmware bug",
        "-note the vendor says it is a firmware bug",
        "Checked. #note the vendor says it is a firmware bug",
    ],
)
def test_a_note_however_spelt_never_reaches_the_requester(desk: Desk, text: str) -> None:
    opened = open_ticket(desk, cc="dave@example.org")
    carol, dave, alice = (
        Mailbox(desk, CAROL),
        Mailbox(desk, "dave@example.org"),
        Mailbox(desk, ALICE),
    )
    reply(desk, opened.notice, text)
    [answer] = alice.next()  # a receipt (kept internal) or an error (refused)
    said = answer.get_content()
    assert "internal note" in said or "Commands not applied" in str(answer["Subject"]), said
    assert carol.nothing_new() and dave.nothing_new()
    for sent in received(desk, CAROL):
        assert "firmware" not in sent.as_string()


def test_cli_reply_with_note_flag_or_note_text_stays_internal(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    for args in (
        ("--note", "-m", "vendor case 4711, firmware bug"),
        ("-m", "#note vendor case 4712, firmware bug"),
        ("-m", "＃note vendor case 4713, firmware bug"),
        ("-m", "#ntoe vendor case 4714, firmware bug"),
    ):
        code, out = desk.cli("ticket", "reply", opened.ref, "--as", "alice", *args)
        kept = code == 0 and "internal note" in out
        refused = code != 0 and "nothing changed" in out
        assert kept or refused, (args, out)
    assert carol.nothing_new()
    relays = [m for m in desk.ticket(opened.ref)["messages"] if m["kind"] == "relay"]
    assert relays == []


@pytest.mark.parametrize(
    "layout",
    [
        "unknown-attribution",
        "bare-paste",
        "forwarded-inside",
        "agent-token-in-text",
        "notice-attached-as-message",
    ],
)
def test_a_reply_quoting_the_notice_is_not_relayed_and_the_agent_is_told(
    desk: Desk, layout: str
) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
    notice_text = opened.notice.get_content()
    body = {
        # An attribution line in no form known (no date, address or "wrote"): the notice
        # below it is not cut.
        "unknown-attribution": f"{NEW}\n\nTest Desk, as it came in:\n\n{notice_text}",
        "bare-paste": f"{NEW}\n\n{notice_text}",
        "forwarded-inside": (
            f"{NEW}\n\n---------- Forwarded message ---------\n"
            f"From: Test Desk <support@example.com>\nSubject: {opened.notice['Subject']}\n\n"
            f"{notice_text}"
        ),
        "agent-token-in-text": f"{NEW}\nAnswers go to {opened.notice['Reply-To']}, thanks.",
        "notice-attached-as-message": NEW,
    }[layout]
    msg = mail(
        f"Re: {opened.notice['Subject']}",
        body,
        sender=f"Alice Admin <{ALICE}>",
        to=str(opened.notice["Reply-To"]),
        in_reply_to=str(opened.notice["Message-ID"]),
    )
    if layout == "notice-attached-as-message":
        # An attached message's text is read into the reply's text (maildesk.parse.parser),
        # so relaying it would send the notice as the answer.
        msg.add_attachment(opened.notice)
    desk.send(msg, to=[str(opened.notice["Reply-To"])])

    [error] = alice.next()
    said = error.get_content()
    assert "not relayed" in said and "resend without" in said, said
    assert carol.nothing_new()
    [kept] = [m for m in desk.ticket(opened.ref)["messages"] if m["kind"] == "agent_rejected"]
    assert kept["internal"] is True
    assert events(desk, opened.ref, "commands_rejected")


def test_a_look_alike_line_inside_a_real_note_is_just_text(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    code, out = desk.cli(
        "ticket", "note", opened.ref, "--as", "alice", "-m", "--note from the vendor: firmware"
    )
    assert code == 0 and "internal note" in out, out
    reply(desk, opened.notice, "#note checked the logs\nVendor call:\n#ntoe firmware bug")
    [note, mailed] = wait_until(
        lambda: _two([m for m in desk.ticket(opened.ref)["messages"] if m["kind"] == "note"])
    )
    assert note["body_text"] == "--note from the vendor: firmware"
    assert "#ntoe firmware bug" in mailed["body_text"]
    assert carol.nothing_new()


def _two(items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return items if len(items) == 2 else None
