"""`maildesk ticket reply/note/set`: the command-line twins of agent mail, and the story
`maildesk ticket show` tells of a whole conversation."""

from __future__ import annotations

import getpass
from pathlib import Path

from tests.agents import ALICE, CAROL, Mailbox, events, mutt_reply, open_ticket, plain_reply, reply
from tests.conftest import Desk, wait_until


def test_cli_reply_is_relayed_like_a_mail_reply(desk: Desk, tmp_path: Path) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    log = tmp_path / "printer.log"
    log.write_text("spooler restarted 10:02\n")

    code, out = desk.cli(
        "ticket",
        "reply",
        opened.ref,
        "--as",
        "alice",
        "-m",
        "#priority P2\nPlease try now.",
        "--attach",
        str(log),
    )

    assert code == 0, out
    assert "priority: P3 -> P2" in out and "status: new -> pending" in out
    [relayed] = carol.next()
    assert "Please try now." in relayed.get_body(("plain",)).get_content()
    assert [a.get_filename() for a in relayed.iter_attachments()] == ["printer.log"]
    assert relayed["In-Reply-To"] == opened.ack["Message-ID"]
    [event] = events(desk, opened.ref, "agent_reply")
    assert (event["actor"], event["via"]) == (ALICE, "cli")
    assert desk.ticket(opened.ref)["priority"] == "P2"


def test_cli_note_stays_internal(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol = Mailbox(desk, CAROL)
    code, out = desk.cli("ticket", "note", opened.ref, "--as", ALICE, "-m", "Vendor case 4711.")
    assert code == 0, out
    detail = desk.ticket(opened.ref)
    [note] = [m for m in detail["messages"] if m["kind"] == "note"]
    assert note["internal"] and note["body_text"] == "Vendor case 4711."
    assert detail["status"] == "open"
    desk.wait_processed(1)
    wait_until(lambda: all(e["status"] == "sent" for e in desk.json("outbox")))
    assert carol.nothing_new()


def test_cli_set_changes_fields_as_an_event_trail(desk: Desk) -> None:
    opened = open_ticket(desk)
    carol, bob = Mailbox(desk, CAROL), Mailbox(desk, "bob@example.com")

    code, out = desk.cli(
        "ticket",
        "set",
        opened.ref,
        "priority=P2",
        "assignee=bob",
        "tags=+printer,-x",
        "status=resolved",
    )

    assert code == 0, out
    detail = desk.ticket(opened.ref)
    assert (detail["priority"], detail["assignee"], detail["status"]) == (
        "P2",
        "bob@example.com",
        "resolved",
    )
    assert detail["tags"] == ["printer"]
    who = f"cli:{getpass.getuser()}"
    for kind in ("priority", "assigned", "tags", "status"):
        [event] = events(desk, opened.ref, kind)
        assert (event["actor"], event["via"]) == (who, "cli"), kind
    [resolved] = carol.next()
    assert "Resolved" in str(resolved["Subject"])
    [assigned] = bob.next()
    assert "Assigned to you" in str(assigned["Subject"])


def test_cli_set_refuses_bad_input_and_changes_nothing(desk: Desk) -> None:
    opened = open_ticket(desk)
    before = desk.ticket(opened.ref)
    code, out = desk.cli("ticket", "set", opened.ref, "status=open", "priority=P9")
    assert code == 1
    assert 'line 2 "#priority P9": priority must be one of P1, P2, P3, P4' in out
    code, out = desk.cli("ticket", "set", opened.ref, "colour=red")
    assert code == 1 and "expected key=value with key one of status" in out
    code, out = desk.cli("ticket", "set", opened.ref, "assignee=me")  # "me" needs --as
    assert code == 1 and "'me' needs an agent: say who you are (--as)" in out
    after = desk.ticket(opened.ref)
    assert (after["status"], after["priority"], after["events"]) == (
        before["status"],
        before["priority"],
        before["events"],
    )


def test_cli_reply_needs_a_known_agent(desk: Desk) -> None:
    opened = open_ticket(desk)
    code, out = desk.cli("ticket", "reply", opened.ref, "-m", "hello")
    assert code == 1 and "--as ADDRESS" in out
    code, out = desk.cli("ticket", "reply", opened.ref, "--as", "mallory", "-m", "hello")
    assert code == 1 and "'mallory' is not one agent of [[agents]]" in out
    code, out = desk.cli("ticket", "reply", "MD-999", "--as", "alice", "-m", "hello")
    assert code == 1 and "ticket MD-999 not found" in out


def test_the_whole_conversation_by_hand(desk: Desk, tmp_path: Path) -> None:
    """Requester mails, agent replies with #priority P2 from mutt, requester answers,
    agent resolves: `maildesk ticket show` tells the story."""
    opened = open_ticket(desk, "Printer on fire", "The printer on floor 2 is smoking.")
    carol = Mailbox(desk, CAROL)

    mutt_reply(
        desk,
        opened.notice,
        "#priority P2\nPlease switch it off; a technician is on the way.",
        tmp_path,
    )
    [relayed] = carol.next()
    plain_reply(desk, relayed, "Switched off. Thanks!", sender=CAROL)
    wait_until(lambda: desk.ticket(opened.ref)["status"] == "open")
    [notice] = wait_until(
        lambda: [m for m in desk.sink.to(ALICE) if "replied" in str(m["Subject"])]
    )
    reply(desk, notice, "#status resolved\nThe technician replaced the fuser unit.")
    [final] = carol.next()
    assert "resolved" in final.get_content()

    code, story = desk.cli("ticket", "show", opened.ref)
    assert code == 0
    expected_in_order = [
        f"{opened.ref}  Printer on fire",
        "status resolved  priority P2",
        "The printer on floor 2 is smoking.",
        "Please switch it off; a technician is on the way.",
        "Switched off. Thanks!",
        "The technician replaced the fuser unit.",
        "carol@example.org (mail): opened the ticket",
        "alice@example.com (mail): wrote (agent, threaded by subject); proof: the ticket's agent",
        "alice@example.com (mail): priority P3 -> P2",
        "alice@example.com (mail): status new -> pending",
        "alice@example.com (mail): assignee none -> alice@example.com (first reply)",
        "carol@example.org (mail): status pending -> open",
        "alice@example.com (mail): status open -> resolved",
    ]
    position = 0
    for line in expected_in_order:
        found = story.find(line, position)
        assert found >= 0, f"{line!r} missing (or out of order) in:\n{story}"
        position = found
