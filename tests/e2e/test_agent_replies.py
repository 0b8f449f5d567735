"""Agents work from their mail client: relay, commands, proof, history stripping (end to end).

Every test runs a real desk on SQLite and on PostgreSQL; mail goes over real SMTP in and
out (the sink is the smarthost), replies are built from tests/data/replies (client layouts)
or written by the real mutt.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agents import (
    ALICE,
    CAROL,
    Mailbox,
    events,
    mutt_reply,
    open_ticket,
    plain_reply,
    received,
    reply,
)
from tests.conftest import Desk, Sink, mail, running_desk, wait_until

NEW = "I have restarted the spooler; please try again."


def test_agent_reply_is_relayed_to_requester_and_ccs(desk: Desk) -> None:
    opened = open_ticket(desk, cc="Dave <dave@example.org>, support@example.com")
    assert desk.ticket(opened.ref)["watchers"] == ["dave@example.org"]
    carol, dave = Mailbox(desk, CAROL), Mailbox(desk, "dave@example.org")

    reply(desk, opened.notice, NEW, client="gmail.eml")

    [relayed] = carol.next()
    [copy] = dave.next()
    assert copy["Message-ID"] == relayed["Message-ID"]  # one message, Cc'd
    assert str(relayed["To"]) == CAROL and str(relayed["Cc"]) == "dave@example.org"
    assert relayed["From"].addresses[0].addr_spec == "support@example.com"
    assert relayed["From"].addresses[0].display_name == "Alice via Test Desk"
    assert f"[{opened.ref}]" in str(relayed["Subject"])
    # Threads under the acknowledgement the requester has, not the agent's notice.
    assert relayed["In-Reply-To"] == opened.ack["Message-ID"]
    assert opened.first_message_id(desk) in str(relayed["References"])
    assert str(relayed["Reply-To"]).startswith("support+")
    assert relayed["Reply-To"] != opened.notice["Reply-To"]  # the requester token
    assert relayed["Auto-Submitted"] is None
    body = relayed.get_body(("plain",)).get_content()
    assert NEW in body
    assert "Help, it is burning" not in body and "wrote:" not in body

    detail = desk.ticket(opened.ref)
    assert detail["status"] == "pending"  # waiting on the requester
    agent_in = [m for m in detail["messages"] if m["kind"] == "agent_reply"]
    assert [m["body_text"] for m in agent_in] == [NEW]
    assert [m["direction"] for m in detail["messages"] if m["kind"] == "relay"] == ["out"]
    [event] = events(desk, opened.ref, "agent_reply")
    assert (event["actor"], event["via"]) == (ALICE, "mail")


@pytest.mark.parametrize(
    "client",
    [
        "outlook.eml",
        "outlook-web-html.eml",
        "outlook-original-message.eml",
        "outlook-de.eml",
        "gmail.eml",
        "apple-mail.eml",
        "thunderbird.eml",
        "thunderbird-de.eml",
    ],
)
def test_quoted_history_and_signature_are_stripped_per_client(desk: Desk, client: str) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    reply(desk, opened.notice, NEW, client=client)
    [relayed] = carol.next()
    body = relayed.get_body(("plain",)).get_content()
    assert NEW in body
    for history in ("Help, it is burning", "New ticket in queue", "Alice Admin\nIT"):
        assert history not in body
    stored = [m for m in desk.ticket(opened.ref)["messages"] if m["kind"] == "agent_reply"]
    assert [m["body_text"] for m in stored] == [NEW]


def test_reply_attachments_are_relayed(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    msg = mail(
        f"Re: {opened.notice['Subject']}",
        NEW,
        sender=f"Alice Admin <{ALICE}>",
        to=str(opened.notice["Reply-To"]),
    )
    msg.add_attachment(
        b"%PDF-1.4 driver", maintype="application", subtype="pdf", filename="driver.pdf"
    )
    desk.send(msg, to=[str(opened.notice["Reply-To"])])
    [relayed] = carol.next()
    [attachment] = list(relayed.iter_attachments())
    assert attachment.get_filename() == "driver.pdf"
    assert attachment.get_content() == b"%PDF-1.4 driver"


def test_mutt_reply_with_priority_command(desk: Desk, tmp_path: Path) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)

    mutt_reply(desk, opened.notice, f"#priority P2\n{NEW}", tmp_path)

    [relayed] = carol.next()
    body = relayed.get_body(("plain",)).get_content()
    assert NEW in body and "#priority" not in body and "wrote:" not in body
    [receipt] = alice.next()
    assert "priority: P3 -> P2" in receipt.get_content()
    assert receipt["In-Reply-To"] is not None
    detail = desk.ticket(opened.ref)
    assert (detail["priority"], detail["status"]) == ("P2", "pending")
    [stored] = [m for m in detail["messages"] if m["kind"] == "agent_reply"]
    assert stored["body_text"] == NEW
    assert b"wrote:" in desk.raw_of(stored["message_id"])  # the whole mail stays stored raw


def test_every_command_applies_and_the_receipt_lists_it(desk: Desk) -> None:
    problem = open_ticket(desk, "Printers keep jamming (problem record)")
    opened = open_ticket(desk)
    alice = Mailbox(desk, ALICE)
    commands = (
        "#status on-hold\n#priority P1\n#assign bob\n#queue infra\n#tag +printer -none\n"
        f"#type request\n#category hardware\n#cc +dave@example.org\n#link {problem.ref}"
    )
    reply(desk, opened.notice, f"{commands}\n{NEW}")

    [receipt] = alice.next()
    detail = desk.ticket(opened.ref)
    assert detail["status"] == "on-hold"  # the command wins over "pending"
    assert (detail["priority"], detail["assignee"], detail["queue"]) == (
        "P1",
        "bob@example.com",
        "infra",
    )
    assert (detail["type"], detail["category"]) == ("request", "hardware")
    assert "printer" in detail["tags"]
    assert detail["watchers"] == ["dave@example.org"]
    assert detail["links"] == [{"ticket": problem.ref, "relation": "related"}]
    text = receipt.get_content()
    for change in (
        "status: new -> on-hold",
        "priority: P3 -> P1",
        "assignee: nobody -> bob@example.com",
        "queue: it -> infra",
        "tags: +printer",
        "watchers: +dave@example.org",
        f"linked to {problem.ref}",
        "reply sent to carol@example.org",
    ):
        assert change in text, change
    # bob hears that the ticket is his.
    [assigned] = wait_until(lambda: desk.sink.to("bob@example.com"))
    assert "Assigned to you" in str(assigned["Subject"])
    kinds = {e["kind"] for e in detail["events"]}
    assert {
        "status",
        "priority",
        "assigned",
        "queue",
        "tags",
        "type",
        "category",
        "watchers",
        "linked",
    } <= kinds


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("#priority P9", "priority must be one of P1, P2, P3, P4"),
        ("#status done", "status must be one of"),
        ("#assign nobody-here", "no single agent matches"),
        ("#queue sales", "no queue 'sales'"),
        ("#type bug", "type must be one of"),
        ("#tag +bad<tag>", "invalid tag"),
        ("#nte forgot the o", "unknown command #nte"),
        ("#merge MD-999", "there is no ticket MD-999"),
        ("#link MD-999", "there is no ticket MD-999"),
        ("#merge MD-1", "MD-1 is this ticket"),
        ("#link MD-1", "MD-1 is this ticket"),
        ("#unlink MD-1", "MD-1 is this ticket"),
        ("#cc +support@example.com", "is a support address"),
    ],
)
def test_an_invalid_command_changes_nothing_and_says_why(desk: Desk, line: str, why: str) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
    before = desk.ticket(opened.ref)

    reply(desk, opened.notice, f"#tag +seen\n{line}\nSecret internal musing.")

    [error] = alice.next()
    text = error.get_content()
    assert "Commands not applied" in str(error["Subject"])
    assert f'line 2 "{line}"' in text and why in text
    after = desk.ticket(opened.ref)
    for key in ("status", "priority", "queue", "assignee", "tags", "type"):
        assert after[key] == before[key], key
    [kept] = [m for m in after["messages"] if m["kind"] == "agent_rejected"]
    assert kept["internal"] is True
    assert carol.nothing_new()  # never relayed
    [rejected] = events(desk, opened.ref, "commands_rejected")
    [recorded] = rejected["data"]["errors"]
    assert recorded.startswith(f'line 2 "{line}": ') and why in recorded


def test_contradicting_commands_change_nothing(desk: Desk) -> None:
    opened = open_ticket(desk)
    alice = Mailbox(desk, ALICE)
    reply(desk, opened.notice, "#status open\n#priority P2\n#status closed\nDone.")
    [error] = alice.next()
    assert 'line 3 "#status closed": contradicts line 1 (#status open)' in error.get_content()
    assert desk.ticket(opened.ref)["priority"] == "P3"


def test_bottom_posted_reply_is_understood(desk: Desk, tmp_path: Path) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    quoted = "\n".join(f"> {line}" for line in opened.notice.get_content().splitlines())
    msg = mail(
        f"Re: {opened.notice['Subject']}",
        f"On Sun, 22 Nov 2026, Test Desk wrote:\n{quoted}\n\n#priority P2\n{NEW}\n\n-- \nAlice",
        sender=ALICE,
        to=str(opened.notice["Reply-To"]),
        in_reply_to=str(opened.notice["Message-ID"]),
    )
    desk.send(msg, to=[str(opened.notice["Reply-To"])])
    [relayed] = carol.next()
    body = relayed.get_body(("plain",)).get_content()
    assert NEW in body and "New ticket" not in body and "#priority" not in body
    assert desk.ticket(opened.ref)["priority"] == "P2"


def test_bottom_posted_note_stays_internal(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
    quoted = "\n".join(f"> {line}" for line in opened.notice.get_content().splitlines())
    msg = mail(
        f"Re: {opened.notice['Subject']}",
        f"Test Desk wrote:\n{quoted}\n\n#note: firmware bug, vendor case 4711",
        sender=ALICE,
        to=str(opened.notice["Reply-To"]),
    )
    desk.send(msg, to=[str(opened.notice["Reply-To"])])
    [receipt] = alice.next()
    assert "internal note" in receipt.get_content()
    assert carol.nothing_new()
    [note] = [m for m in desk.ticket(opened.ref)["messages"] if m["kind"] == "note"]
    assert note["body_text"] == "firmware bug, vendor case 4711"


def test_a_misplaced_note_is_never_relayed(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
    reply(desk, opened.notice, "Checked the logs.\n\n#note do not tell the customer yet")
    [error] = alice.next()
    assert "commands go at the top" in error.get_content()
    assert carol.nothing_new()


def test_agent_out_of_office_is_kept_not_relayed(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    msg = mail(
        f"Automatic reply: {opened.notice['Subject']}",
        "I am out of the office until Monday.",
        sender=ALICE,
        to=str(opened.notice["Reply-To"]),
        headers={"Auto-Submitted": "auto-replied"},
    )
    desk.send(msg, to=[str(opened.notice["Reply-To"])])
    wait_until(lambda: any(m["kind"] == "agent_auto" for m in desk.ticket(opened.ref)["messages"]))
    detail = desk.ticket(opened.ref)
    assert detail["status"] == "new"
    assert carol.nothing_new()


def test_agent_without_a_name_is_never_shown_by_address(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    extra = '[[agents]]\nemail = "zed@example.com"\nqueues = ["it"]\n'
    with running_desk(write_config(db_url, sink.port, extra=extra), sink) as desk:
        open_ticket(desk)
        [notice] = wait_until(lambda: received(desk, "zed@example.com"))
        carol = Mailbox(desk, CAROL)
        reply(desk, notice, NEW, sender="zed@example.com")
        [relayed] = carol.next()
        assert "zed" not in relayed.as_string().lower()
        assert relayed["From"].addresses[0].display_name == "Test Desk"


def test_command_receipts_can_be_turned_off(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    extra = "[notify]\ncommand_receipts = false\n"
    with running_desk(write_config(db_url, sink.port, extra=extra), sink) as desk:
        opened = open_ticket(desk)
        carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
        reply(desk, opened.notice, f"#priority P2\n{NEW}")
        carol.next()
        desk.wait_processed(2)
        wait_until(lambda: all(e["status"] == "sent" for e in desk.json("outbox")))
        assert alice.nothing_new()
        assert desk.ticket(opened.ref)["priority"] == "P2"


def test_watchers_come_from_the_requesters_tied_replies_only(desk: Desk) -> None:
    opened = open_ticket(desk)
    # A forged requester From with only the subject tag adds nobody.
    desk.send(
        mail(
            f"Re: [{opened.ref}] x", "Add me.", sender=CAROL, headers={"Cc": "mallory@evil.example"}
        )
    )
    desk.wait_processed(2)
    assert desk.ticket(opened.ref)["watchers"] == []
    [held] = events(desk, opened.ref, "watchers_not_added")
    assert held["data"]["addresses"] == ["mallory@evil.example"]
    assert "only by its subject tag" in held["data"]["reason"]
    # The requester answering our mail (to its reply token) with a colleague in Cc adds them.
    plain_reply(
        desk,
        opened.ack,
        "Adding my colleague.",
        sender=CAROL,
        headers={"Cc": "Erin <erin@example.org>"},
    )
    wait_until(lambda: desk.ticket(opened.ref)["watchers"] == ["erin@example.org"])
    # An agent takes one off.
    alice = Mailbox(desk, ALICE)
    reply(desk, opened.notice, "#cc -erin@example.org")
    alice.next()
    assert desk.ticket(opened.ref)["watchers"] == []


def test_requester_reply_notifies_the_assignee_and_a_reopen_says_so(desk: Desk) -> None:
    opened = open_ticket(desk)
    alice, bob, carol = Mailbox(desk, ALICE), Mailbox(desk, "bob@example.com"), Mailbox(desk, CAROL)
    reply(desk, opened.notice, "#assign bob\n#status resolved")
    alice.next()
    bob.next()  # assigned to you
    [resolved] = carol.next()
    plain_reply(desk, resolved, "Not fixed after all.", sender=CAROL)
    [reopened] = bob.next()
    assert "Reopened by" in str(reopened["Subject"])
    assert "Not fixed after all." in reopened.get_content()
    assert alice.nothing_new()  # the assignee hears of it, not the whole queue


def test_notify_agents_off_is_recorded(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    extra = "[notify]\nnotify_agents = false\n"
    with running_desk(write_config(db_url, sink.port, extra=extra), sink) as desk:
        desk.send(mail("Printer on fire"))
        [ticket] = desk.wait_tickets(1)
        [event] = wait_until(lambda: events(desk, ticket["ref"], "notification_suppressed"))
        assert event["data"] == {
            "notification": "agent_new_ticket",
            "reason": "[notify] notify_agents = false",
        }


def test_a_ticket_stops_mailing_at_the_hourly_cap(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    extra = "[notify]\nper_ticket_per_hour = 4\n"
    with running_desk(write_config(db_url, sink.port, extra=extra), sink) as desk:
        opened = open_ticket(desk)  # 2 mails: acknowledgement, notice
        carol = Mailbox(desk, CAROL)
        for n in range(3):
            reply(desk, opened.notice, f"Answer {n}.")
        desk.wait_processed(4)
        carol_mails = carol.next(2)  # 2 relays fit under the cap of 4; the third does not
        assert [m.get_content().split("\n")[0].strip() for m in carol_mails] == [
            "Answer 0.",
            "Answer 1.",
        ]
        capped = [
            e
            for e in events(desk, opened.ref, "notification_suppressed")
            if "per_ticket_per_hour" in e["data"]["reason"]
        ]
        assert capped and capped[0]["data"]["notification"] == "relay"


def test_internal_note_never_reaches_the_requester(desk: Desk) -> None:
    opened = open_ticket(desk, cc="dave@example.org")
    carol, dave, alice = (
        Mailbox(desk, CAROL),
        Mailbox(desk, "dave@example.org"),
        Mailbox(desk, ALICE),
    )

    reply(
        desk,
        opened.notice,
        "#note the printer vendor says it is a known firmware bug\nTicket 4711 with them.",
    )

    [receipt] = alice.next()
    assert "internal note" in receipt.get_content()
    detail = desk.ticket(opened.ref)
    [note] = [m for m in detail["messages"] if m["kind"] == "note"]
    assert note["internal"] is True
    assert (
        note["body_text"]
        == "the printer vendor says it is a known firmware bug\n\nTicket 4711 with them."
    )
    assert detail["status"] == "open"  # first agent action; no reply, so not pending
    assert carol.nothing_new() and dave.nothing_new()
    # A later public reply goes out to both; the note never did.
    reply(desk, opened.notice, NEW)
    [relayed] = carol.next()
    [copy] = dave.next()
    assert copy["Message-ID"] == relayed["Message-ID"]
    for sent in (*received(desk, CAROL), *received(desk, "dave@example.org")):
        assert "firmware" not in sent.as_string()
    requester_side = [e for e in desk.json("outbox") if {CAROL, "dave@example.org"} & set(e["to"])]
    assert sorted(e["kind"] for e in requester_side) == ["acknowledgement", "relay"]


def test_forged_agent_from_without_proof_is_a_requester_message(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
    reply(desk, opened.notice, "#status resolved")  # resolved: a forged mail must not reopen
    carol.next()  # the resolved notice
    alice.next()  # the receipt

    # Answering the requester's thread (In-Reply-To the acknowledgement) to the plain
    # support address: no agent token, no Authentication-Results.
    forged = mail(
        f"Re: [{opened.ref}] Printer on fire",
        "#status closed\nAll good, closing.",
        sender=f"Alice Admin <{ALICE}>",
        in_reply_to=str(opened.ack["Message-ID"]),
    )
    desk.send(forged)

    # The real alice is told, with a warning, and that her mail was not relayed.
    [notice] = [m for m in alice.next(2) if "Not relayed" not in str(m["Subject"])]
    assert "WARNING: From claims agent alice@example.com" in notice.get_content()
    detail = desk.ticket(opened.ref)
    assert detail["status"] == "resolved"  # no command ran, and it did not reopen either
    [flag] = events(desk, opened.ref, "sender_unverified")
    assert "neither this ticket's agent reply token nor a trusted" in flag["data"]["reason"]
    assert carol.nothing_new()  # never relayed
    [msg] = [m for m in detail["messages"] if m["message_id"] == forged["Message-ID"]]
    assert msg["kind"] == "mail" and "#status closed" in msg["body_text"]


def test_forged_agent_from_with_only_a_subject_ref_opens_a_new_ticket(desk: Desk) -> None:
    opened = open_ticket(desk)
    forged = mail(
        f"Re: [{opened.ref}] Printer on fire", "#status closed", sender=f"Alice <{ALICE}>"
    )
    desk.send(forged)
    tickets = desk.wait_tickets(2)
    new = next(t for t in tickets if t["ref"] != opened.ref)
    [linked] = events(desk, new["ref"], "linked")
    assert "From claims agent alice@example.com" in linked["data"]["reason"]
    assert all(m["message_id"] != forged["Message-ID"] for m in desk.ticket(opened.ref)["messages"])


def test_requester_token_does_not_prove_an_agent(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    # The requester knows their own reply address; forging an agent's From to it fails.
    plain_reply(desk, opened.ack, "#status resolved\nDone", sender=ALICE)
    wait_until(lambda: events(desk, opened.ref, "sender_unverified"))
    assert desk.ticket(opened.ref)["status"] != "resolved"
    assert carol.nothing_new()


def test_agent_token_of_another_ticket_is_no_proof(desk: Desk) -> None:
    first = open_ticket(desk, "VPN broken")
    second = open_ticket(desk)
    # Alice's client reuses the first ticket's reply address on a mail about the second.
    reply(desk, second.notice, "#status resolved\nDone.", to=str(first.notice["Reply-To"]))
    [flag] = wait_until(lambda: events(desk, second.ref, "sender_unverified"))
    assert (
        f"carries the agent reply token of {first.ref}, not of this ticket"
        in flag["data"]["reason"]
    )
    assert desk.ticket(second.ref)["status"] != "resolved"
    assert desk.ticket(first.ref)["status"] == "new"


@pytest.mark.parametrize(
    ("header", "proof"),
    [
        ("mx.example.com; dmarc=pass header.from=example.com", "dmarc=pass by mx.example.com"),
        ("mx.example.com; dkim=pass header.d=example.com", "dkim=pass (aligned) by mx.example.com"),
        ("evil.example.net; dmarc=pass header.from=example.com", None),  # not trusted
        ("mx.example.com; spf=pass smtp.mailfrom=alice@example.com", None),  # SPF alone
        ("mx.example.com; dkim=pass header.d=evil.example.net", None),  # not aligned
    ],
)
def test_trusted_authentication_results_prove_an_agent(
    db_url: str, sink: Sink, write_config: Callable[..., Path], header: str, proof: str | None
) -> None:
    trust = '[security]\ntrusted_authserv_ids = ["mx.example.com"]\n'
    with running_desk(write_config(db_url, sink.port, extra=trust), sink) as desk:
        opened = open_ticket(desk)
        carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
        # A fresh mail to the plain support address, answering the requester's thread,
        # with the trace the border server adds on top (Postfix: its Received line, then
        # the milter's Authentication-Results).
        msg = mail(
            f"Re: [{opened.ref}] Printer on fire",
            "#priority P1\nWe are on it.",
            sender=ALICE,
            in_reply_to=str(opened.ack["Message-ID"]),
        )
        trace = (
            "Received: from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.com"
            f" (Postfix) with ESMTPS id 4Xy9; Tue, 1 Dec 2026 20:00:00 +0000\r\n"
            f"Authentication-Results: {header}\r\n"
        )
        desk.send(trace.encode() + msg.as_bytes())
        if proof:
            [relayed] = carol.next()
            assert "We are on it." in relayed.get_content()
        else:
            [warned] = [m for m in alice.next(2) if "Not relayed" not in str(m["Subject"])]
            assert "WARNING: From claims agent" in warned.get_content()
        detail = desk.ticket(opened.ref)
        assert detail["priority"] == ("P1" if proof else "P3")
        [event] = [e for e in events(desk, opened.ref, "message") if e["actor"] == ALICE]
        assert event["data"].get("proof") == proof
        assert bool(events(desk, opened.ref, "sender_unverified")) is (proof is None)


def test_merge_moves_history_keeps_requesters_and_rethreads(desk: Desk) -> None:
    main = open_ticket(desk)
    dup = open_ticket(desk, "Printer still burning", sender="Dave <dave@example.org>")
    dave = Mailbox(desk, "dave@example.org")

    reply(desk, dup.notice, f"#merge {main.ref}")

    [merged_notice] = dave.next()
    assert f"Now handled as {main.ref}" in str(merged_notice["Subject"])
    source, target = desk.ticket(dup.ref), desk.ticket(main.ref)
    assert (source["status"], source["merged_into"]) == ("merged", main.ref)
    # The conversation moved; what stays is the agent's receipt of what happened to it.
    assert [m["kind"] for m in source["messages"]] == ["command_receipt"]
    assert "dave@example.org" in target["watchers"]
    assert any(m["from"] == "dave@example.org" for m in target["messages"])
    assert events(desk, main.ref, "merged")[0]["data"]["source"] == dup.ref
    # Dave answers his old acknowledgement: it lands on the ticket it was merged into.
    plain_reply(desk, dup.ack, "Any news?", sender="dave@example.org")
    wait_until(
        lambda: any(m["body_text"] == "Any news?" for m in desk.ticket(main.ref)["messages"])
    )
    assert len(desk.tickets()) == 2
    # Merging into a ticket that was itself merged names the final one.
    third = open_ticket(desk, "Third printer")
    alice = Mailbox(desk, ALICE)
    reply(desk, third.notice, f"#merge {dup.ref}")
    [error] = alice.next()
    assert f"was merged into {main.ref}; merge into that" in error.get_content()


def test_link_incident_to_problem_both_ways(desk: Desk) -> None:
    incident = open_ticket(desk, "Printer on floor 3 jams")
    problem = open_ticket(desk, "Printer fleet firmware")
    alice = Mailbox(desk, ALICE)
    reply(desk, problem.notice, "#type problem")
    alice.next()
    reply(desk, incident.notice, f"#type incident\n#link {problem.ref}")
    alice.next()
    assert desk.ticket(incident.ref)["links"] == [{"ticket": problem.ref, "relation": "problem"}]
    assert desk.ticket(problem.ref)["links"] == [{"ticket": incident.ref, "relation": "incident"}]
    reply(desk, incident.notice, f"#unlink {problem.ref}")
    alice.next()
    assert desk.ticket(problem.ref)["links"] == []


def test_stranger_with_only_a_subject_ref_opens_a_linked_ticket(desk: Desk) -> None:
    opened = open_ticket(desk)
    desk.send(
        mail(
            f"Re: [{opened.ref}] Printer on fire",
            "I want in on this.",
            sender="mallory@evil.example.net",
        )
    )
    tickets = desk.wait_tickets(2)
    new = next(t for t in tickets if t["ref"] != opened.ref)
    assert new["requester"] == "mallory@evil.example.net"
    [linked] = events(desk, new["ref"], "linked")
    assert linked["data"]["ticket"] == opened.ref
    assert "is not its requester, a watcher or an agent" in linked["data"]["reason"]
    assert all(m["from"] != "mallory@evil.example.net" for m in desk.ticket(opened.ref)["messages"])
    # The requester and a watcher still thread by the subject alone.
    desk.send(mail(f"Re: [{opened.ref}] Printer on fire", "Still burning.", sender=CAROL))
    wait_until(
        lambda: any(m["body_text"] == "Still burning." for m in desk.ticket(opened.ref)["messages"])
    )


def test_stranger_subject_ref_appends_when_configured(
    db_url: str, sink: object, write_config: object
) -> None:
    path = write_config(
        db_url, sink.port, extra='[threading]\nsubject_ref_from_strangers = "append"\n'
    )  # type: ignore[operator,attr-defined]
    with running_desk(path, sink) as desk:  # type: ignore[arg-type]
        opened = open_ticket(desk)
        desk.send(mail(f"Re: [{opened.ref}] x", "Me too.", sender="erin@example.net"))
        wait_until(
            lambda: any(
                m["from"] == "erin@example.net" for m in desk.ticket(opened.ref)["messages"]
            )
        )
        assert len(desk.tickets()) == 1


def test_lifecycle_reply_pending_requester_open_resolve_reopen(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    reply(desk, opened.notice, NEW)
    [relayed] = carol.next()
    assert desk.ticket(opened.ref)["status"] == "pending"

    plain_reply(desk, relayed, "Still broken.", sender=CAROL)
    wait_until(lambda: desk.ticket(opened.ref)["status"] == "open")

    reply(desk, opened.notice, "#status resolved")  # commands only: nothing relayed
    [resolved] = carol.next()
    assert "Resolved" in str(resolved["Subject"]) and "reopens" in resolved.get_content()
    assert resolved["In-Reply-To"] is not None

    plain_reply(desk, resolved, "No, it is not fixed.", sender=CAROL)
    wait_until(lambda: desk.ticket(opened.ref)["status"] == "open")
    [reopened] = events(desk, opened.ref, "reopened")
    assert (reopened["data"]["from"], reopened["actor"]) == ("resolved", CAROL)
    statuses = [
        (e["data"]["from"], e["data"]["to"])
        for e in desk.ticket(opened.ref)["events"]
        if e["kind"] in ("status", "reopened")
    ]
    assert statuses == [
        ("new", "pending"),
        ("pending", "open"),
        ("open", "resolved"),
        ("resolved", "open"),
    ]


def test_resolving_with_a_reply_sends_one_mail(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    reply(desk, opened.notice, f"#status resolved\n{NEW}")
    [relayed] = carol.next()
    assert "resolved" in relayed.get_content()
    assert desk.ticket(opened.ref)["status"] == "resolved"
    desk.wait_processed(2)
    wait_until(lambda: all(e["status"] == "sent" for e in desk.json("outbox")))
    assert len(desk.sink.to(CAROL)) == 2  # the acknowledgement and the reply, nothing more


def test_automatic_reply_to_a_relay_does_not_reopen(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    reply(desk, opened.notice, NEW)
    [relayed] = carol.next()
    plain_reply(
        desk,
        relayed,
        "I am out of the office until Monday.",
        sender=CAROL,
        headers={"Auto-Submitted": "auto-replied"},
    )
    wait_until(
        lambda: len([m for m in desk.ticket(opened.ref)["messages"] if m["from"] == CAROL]) == 2
    )
    assert desk.ticket(opened.ref)["status"] == "pending"
