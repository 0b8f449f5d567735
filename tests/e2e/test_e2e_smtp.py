"""End to end over real sockets: smtplib -> maildesk serve -> tickets -> notifications -> sink.

Every test here runs on SQLite and on PostgreSQL (see the db_url fixture).
"""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest
from sqlalchemy import update

from maildesk.store.models import Ticket
from tests.conftest import Desk, mail, wait_until


def test_new_ticket_gets_acknowledgement_and_agent_notice(desk: Desk) -> None:
    original = mail("Printer on fire", message_id="<p1@client.example.org>")
    desk.send(original)

    [ticket] = desk.wait_tickets(1)
    assert ticket["ref"] == f"MD-{ticket['id']}"
    assert ticket["subject"] == "Printer on fire"
    assert ticket["status"] == "new"
    assert ticket["queue"] == "it"
    assert ticket["requester"] == "carol@example.org"
    for key in ("priority", "type", "category", "assignee", "tags", "created_at", "updated_at"):
        assert key in ticket

    desk.sink.wait_for(2)
    [ack] = desk.sink.to("carol@example.org")
    [notice] = desk.sink.to("alice@example.com")
    ref = ticket["ref"]
    assert str(ack["To"]) == "carol@example.org"
    assert f"[{ref}]" in str(ack["Subject"])
    assert ack["In-Reply-To"] == "<p1@client.example.org>"
    assert "<p1@client.example.org>" in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["Message-ID"] and ack["Message-ID"] != notice["Message-ID"]
    assert str(ack["Reply-To"]).startswith("support+") and str(ack["Reply-To"]).endswith(
        "@example.com"
    )
    assert "alice@example.com" in str(notice["To"])
    assert "bob@example.com" not in str(notice["To"])  # not an agent of queue "it"
    assert f"[{ref}]" in str(notice["Subject"])
    assert "Help, it is burning." in notice.get_content()

    detail = desk.ticket(ref)
    inbound = [m for m in detail["messages"] if m["direction"] == "in"]
    outbound = [m for m in detail["messages"] if m["direction"] == "out"]
    assert [m["message_id"] for m in inbound] == ["<p1@client.example.org>"]
    assert inbound[0]["body_text"] == "Help, it is burning."
    assert {m["message_id"] for m in outbound} == {ack["Message-ID"], notice["Message-ID"]}
    assert {e["kind"] for e in detail["events"]} >= {"created", "routed"}
    outbox = desk.json("outbox")
    wait_until(lambda: all(e["status"] == "sent" for e in desk.json("outbox")))
    assert {e["kind"] for e in outbox} == {"acknowledgement", "agent_new_ticket"}


def test_reply_threads_by_subject_ref(desk: Desk) -> None:
    desk.send(mail("VPN broken"))
    [ticket] = desk.wait_tickets(1)
    desk.sink.wait_for(2)

    desk.send(mail(f"Re: AW: [{ticket['ref'].lower()}] VPN broken", "Still broken."))
    desk.wait_processed(2)

    assert len(desk.tickets()) == 1
    inbound = [m for m in desk.ticket(ticket["id"])["messages"] if m["direction"] == "in"]
    assert [m["body_text"] for m in inbound] == ["Help, it is burning.", "Still broken."]
    desk.sink.wait_for(3)  # the reply notice to the queue's agent
    assert len(desk.sink.to("carol@example.org")) == 1  # no second acknowledgement


def test_reply_threads_by_in_reply_to_when_client_dropped_the_tag(desk: Desk) -> None:
    desk.send(mail("Laptop slow"))
    [ticket] = desk.wait_tickets(1)
    ack = desk.sink.to("carol@example.org")
    ack = ack or wait_until(lambda: desk.sink.to("carol@example.org"))

    reply = mail("Laptop slow", "Here is more detail.", in_reply_to=ack[0]["Message-ID"])
    desk.send(reply)
    desk.wait_processed(2)

    assert len(desk.tickets()) == 1
    detail = desk.ticket(ticket["ref"])
    message_event = [e for e in detail["events"] if e["kind"] == "message"]
    assert message_event[0]["data"]["threaded_by"] == "in-reply-to"


def test_reply_threads_by_reply_token_alone(desk: Desk) -> None:
    desk.send(mail("Printer jam"))
    [ticket] = desk.wait_tickets(1)
    [ack] = wait_until(lambda: desk.sink.to("carol@example.org"))
    token_address = str(ack["Reply-To"])

    desk.send(mail("something unrelated", "More info.", to=token_address))
    desk.wait_processed(2)

    assert len(desk.tickets()) == 1
    events = desk.ticket(ticket["id"])["events"]
    assert [e["data"]["threaded_by"] for e in events if e["kind"] == "message"] == ["reply-token"]


def test_duplicate_message_id_is_one_message(desk: Desk) -> None:
    original = mail("Disk full", message_id="<dup@client.example.org>")
    # One transaction to two support addresses, then the same mail again via another path.
    desk.send(original, to=["support@example.com", "helpdesk@example.com"])
    desk.send(original, to=["helpdesk@example.com"])
    statuses = desk.wait_processed(2)

    assert sorted(statuses) == ["duplicate", "processed"]
    [ticket] = desk.tickets()
    inbound = [m for m in desk.ticket(ticket["id"])["messages"] if m["direction"] == "in"]
    assert len(inbound) == 1


def test_unknown_recipient_is_refused_at_rcpt(desk: Desk) -> None:
    with smtplib.SMTP("127.0.0.1", desk.port) as smtp:
        smtp.ehlo()
        assert smtp.mail("carol@example.org")[0] == 250
        code, text = smtp.rcpt("sales@example.com")
        assert code == 550
        assert b"sales@example.com" in text
        assert smtp.rcpt("Support+abc123@Example.com")[0] == 250  # plus form, any case


def test_oversize_message_gets_552(desk: Desk) -> None:
    big = mail("Huge", "x" * 1_100_000)  # max_message_size is 1MB in the test config
    with pytest.raises(smtplib.SMTPException) as info:
        desk.send(big)
    code = (
        getattr(info.value, "smtp_code", None)
        or next(iter(getattr(info.value, "recipients", {}).values()), (None,))[0]
    )
    assert code == 552
    assert desk.raw_statuses() == []


def test_closed_ticket_reopens_within_window(desk: Desk) -> None:
    desk.send(mail("Monitor flickers"))
    [ticket] = desk.wait_tickets(1)
    now = desk.app.now()
    with desk.app.sessions.begin() as s:
        s.execute(
            update(Ticket).where(Ticket.id == ticket["id"]).values(status="closed", closed_at=now)
        )

    desk.send(mail(f"Re: [{ticket['ref']}] Monitor flickers", "It is back."))
    desk.wait_processed(2)

    [after] = desk.tickets()
    assert after["status"] == "open"
    assert "reopened" in [e["kind"] for e in desk.ticket(after["id"])["events"]]


def test_reply_to_long_closed_ticket_opens_linked_ticket(desk: Desk) -> None:
    desk.send(mail("Keyboard broken"))
    [ticket] = desk.wait_tickets(1)
    long_ago = desk.app.now() - timedelta(days=30)  # reopen_window is 14d
    with desk.app.sessions.begin() as s:
        s.execute(
            update(Ticket)
            .where(Ticket.id == ticket["id"])
            .values(status="closed", closed_at=long_ago)
        )

    desk.send(mail(f"Re: [{ticket['ref']}] Keyboard broken", "Broken again."))
    tickets = desk.wait_tickets(2)

    new = next(t for t in tickets if t["id"] != ticket["id"])
    assert new["parent"] == ticket["ref"]
    assert new["status"] == "new"
    assert desk.ticket(ticket["id"])["status"] == "closed"
    linked = [e for e in desk.ticket(new["id"])["events"] if e["kind"] == "linked"]
    assert linked and linked[0]["data"]["ticket"] == ticket["ref"]


def test_example_rule_routes_outage_to_infra(desk: Desk) -> None:
    desk.send(mail("Mail server is DOWN"))
    [ticket] = desk.wait_tickets(1)

    assert (ticket["queue"], ticket["priority"], ticket["type"]) == ("infra", "P1", "incident")
    routed = [e for e in desk.ticket(ticket["id"])["events"] if e["kind"] == "routed"]
    assert routed[0]["data"]["matched"] == ["outages are P1 for infra"]
    [notice] = wait_until(lambda: desk.sink.to("bob@example.com"))  # infra's agent
    assert "alice@example.com" not in str(notice["To"])


def test_auto_reply_gets_no_acknowledgement(desk: Desk) -> None:
    desk.send(mail("Out of office", headers={"Auto-Submitted": "auto-replied"}))
    [ticket] = desk.wait_tickets(1)
    wait_until(lambda: desk.sink.to("alice@example.com"))  # the agent notice still goes out

    assert desk.sink.to("carol@example.org") == []
    events = desk.ticket(ticket["id"])["events"]
    suppressed = [e for e in events if e["kind"] == "notification_suppressed"]
    assert "Auto-Submitted" in suppressed[0]["data"]["reason"]


def test_attachments_and_encoded_subject_survive(desk: Desk) -> None:
    msg = mail("Drücker kaputt – bitte helfen")
    msg.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="../../etc/rapport é.pdf"
    )
    desk.send(msg)
    [ticket] = desk.wait_tickets(1)

    assert ticket["subject"] == "Drücker kaputt – bitte helfen"
    [inbound] = [m for m in desk.ticket(ticket["id"])["messages"] if m["direction"] == "in"]
    [att] = inbound["attachments"]
    assert att == {
        **att,
        "filename": "rapport é.pdf",
        "content_type": "application/pdf",
        "size": len(b"%PDF-1.4 fake"),
    }


def test_bare_lf_line_ends_are_accepted(desk: Desk) -> None:
    # smtplib.sendmail with bytes, many scripts and some old clients send bare LF line ends.
    body = "\n".join(f"line {n}: the scanner on floor 3 prints blank pages" for n in range(60))
    raw = mail("Scanner prints blank pages", body).as_bytes().replace(b"\r\n", b"\n")
    assert len(raw) > 2000 and b"\r\n" not in raw
    desk.send(raw, mail_from="carol@example.org")
    [ticket] = desk.wait_tickets(1)
    [inbound] = [m for m in desk.ticket(ticket["ref"])["messages"] if m["direction"] == "in"]
    assert "line 59: the scanner" in inbound["body_text"]


def test_requester_reply_notifies_the_queue_agents(desk: Desk) -> None:
    desk.send(mail("Printer on fire", message_id="<r1@client.example.org>"))
    [ticket] = desk.wait_tickets(1)
    desk.sink.wait_for(2)
    desk.send(
        mail(
            f"Re: [{ticket['ref']}] Printer on fire",
            "Now it smokes too.",
            in_reply_to="<r1@client.example.org>",
        )
    )
    [*_, notice] = desk.sink.wait_for(3)
    assert str(notice["To"]) == "alice@example.com"
    assert str(notice["Subject"]).startswith(f"[{ticket['ref']}] Carol Customer replied:")
    assert "Now it smokes too." in notice.get_content()
    assert notice["Auto-Submitted"] == "auto-generated"
    detail = desk.ticket(ticket["ref"])
    assert [m["internal"] for m in detail["messages"] if m["direction"] == "out"] == [
        False,
        True,
        True,
    ]
    assert len(desk.sink.to("carol@example.org")) == 1, "no second acknowledgement"


def test_header_injection_through_subject_and_name_is_defused(desk: Desk) -> None:
    # Encoded-words may carry CR/LF; a template puts subject and name into headers.
    raw = (
        b"From: =?utf-8?q?Eve=0D=0ABcc=3A_victim=40example=2Enet?= <eve@example.org>\r\n"
        b"To: support@example.com\r\n"
        b"Subject: =?utf-8?q?Hello=0D=0ABcc:_victim@example.net=0D=0A=0D=0Abody?=\r\n"
        b"Message-ID: <inject@example.org>\r\n\r\nhi\r\n"
    )
    desk.send(raw, mail_from="eve@example.org")
    [ticket] = desk.wait_tickets(1)
    for sent in desk.sink.wait_for(2):
        assert sent["Bcc"] is None and sent["To"] is not None
        assert "\n" not in str(sent["Subject"]) and "\r" not in str(sent["Subject"])
    recipients = [rcpts for _, rcpts, _ in desk.sink.messages]
    assert all("victim@example.net" not in r for rcpts in recipients for r in rcpts)
    assert "Hello Bcc: victim@example.net" in ticket["subject"]
    assert ticket["requester"] == "eve@example.org"
    [ack] = desk.sink.to("eve@example.org")
    assert str(ack["Subject"]).startswith(f"[{ticket['ref']}] Hello Bcc: victim@example.net")
