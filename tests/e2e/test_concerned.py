"""People hear about what concerns them (end to end, real SMTP in and out): the assignee
of a ticket another agent notes on, the requester of a ticket resolved at the command line,
the agent who merged two tickets (one receipt per ticket).
"""

from __future__ import annotations

from tests.agents import ALICE, CAROL, Mailbox, open_ticket, reply
from tests.conftest import Desk

BOB = "bob@example.com"


def test_a_note_by_another_agent_tells_the_assignee(desk: Desk) -> None:
    opened = open_ticket(desk)
    code, out = desk.cli("ticket", "set", opened.ref, "assignee=alice", "--as", ALICE)
    assert code == 0, out
    alice, carol = Mailbox(desk, ALICE), Mailbox(desk, CAROL)

    code, out = desk.cli(
        "ticket", "note", opened.ref, "--as", BOB, "-m", "The toner is recalled; swap it."
    )

    assert code == 0, out
    assert f"note sent to the assignee, {ALICE}" in out
    [notice] = alice.next()
    assert str(notice["Subject"]) == f"[{opened.ref}] Note from Bob <{BOB}>: Printer on fire"
    assert "The toner is recalled; swap it." in notice.get_content()
    assert "The requester has not seen this note." in notice.get_content()
    assert carol.nothing_new()
    # Alice's own note tells nobody.
    code, out = desk.cli("ticket", "note", opened.ref, "--as", ALICE, "-m", "Ordered one.")
    assert code == 0 and "note sent" not in out
    assert alice.nothing_new()


def test_resolving_at_the_command_line_sends_the_mail_a_resolving_reply_would(
    desk: Desk,
) -> None:
    by_mail, by_cli = open_ticket(desk), open_ticket(desk, "Scanner jams")
    carol = Mailbox(desk, CAROL)
    reply(desk, by_mail.notice, "#status resolved")
    [mailed] = carol.next()

    code, out = desk.cli("ticket", "set", by_cli.ref, "status=resolved")  # an operator

    assert code == 0, out
    [resolved] = carol.next()
    assert desk.ticket(by_cli.ref)["status"] == "resolved"
    assert str(resolved["Subject"]) == str(mailed["Subject"]).replace(
        by_mail.ref, by_cli.ref
    ).replace("Printer on fire", "Scanner jams")
    as_mailed = mailed.get_content().replace(by_mail.ref, by_cli.ref)
    assert resolved.get_content() == as_mailed.replace("Printer on fire", "Scanner jams")
    assert resolved["In-Reply-To"] is not None


def test_merge_receipts_are_one_per_ticket(desk: Desk) -> None:
    main = open_ticket(desk)
    dup = open_ticket(desk, "Printer still burning", sender="Dave <dave@example.org>")
    alice = Mailbox(desk, ALICE)

    reply(desk, dup.notice, f"#priority P2\n#merge {main.ref}")

    receipts = sorted(alice.next(2), key=lambda m: str(m["Subject"]))
    by_ticket = {str(m["X-Maildesk-Ticket"]): m.get_content() for m in receipts}
    assert set(by_ticket) == {main.ref, dup.ref}
    source, target = by_ticket[dup.ref], by_ticket[main.ref]
    assert f"{dup.ref} is now merged, P2" in source
    assert "priority: P3 -> P2" in source and f"merged into {main.ref}" in source
    assert f"{main.ref} is now new, P3" in target
    assert f"{dup.ref} merged into this ticket" in target
    assert "priority" not in target
