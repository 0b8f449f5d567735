"""The knowledge base over real SMTP, on both databases: suggestions in the acknowledgement
of a new ticket (and none for an unrelated question), `#kb SLUG` in an agent's reply,
`#kb-draft` kept until `maildesk kb publish`. The articles are the example config's kb/."""

from __future__ import annotations

import json
import mailbox
import shutil
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.agents import ALICE, CAROL, Mailbox, events, open_ticket, reply
from tests.conftest import Desk, Sink, running_desk

SAMPLE_KB = Path(__file__).parents[2] / "kb"


@pytest.fixture
def kb_desk(
    db_url: str, sink: Sink, write_config: Callable[..., Path], tmp_path: Path
) -> Iterator[Desk]:
    shutil.copytree(SAMPLE_KB, tmp_path / "kb")
    config = write_config(db_url, sink.port, extra='\n[kb]\npath = "kb"\n')
    with running_desk(config, sink) as d:
        yield d


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _files(msg: EmailMessage) -> list[str]:
    return [str(p.get_filename()) for p in msg.iter_attachments()]


def test_a_matching_question_gets_the_article_in_its_acknowledgement(kb_desk: Desk) -> None:
    opened = open_ticket(
        kb_desk, "VPN does not connect", "Since this morning the VPN client will not connect."
    )
    body = _text(opened.ack)
    assert "These articles may already answer your question:" in body
    assert "* VPN does not connect (attached)" in body
    assert "If the VPN client cannot connect" in body  # its first lines
    assert "Escalating VPN" not in body  # an article for agents is never suggested
    assert _files(opened.ack)[0] == "vpn-does-not-connect.txt"
    detail = kb_desk.ticket(opened.ref)
    assert detail["kb_suggested"][0] == "vpn-does-not-connect"
    assert "escalate-to-network-team" not in detail["kb_suggested"]
    [event] = events(kb_desk, opened.ref, "kb_suggested")
    assert event["data"]["slugs"] == detail["kb_suggested"]


def test_an_unrelated_question_gets_no_suggestion(kb_desk: Desk) -> None:
    opened = open_ticket(kb_desk, "Lunch menu on Friday", "Is there soup in the canteen?")
    assert "These articles" not in _text(opened.ack)
    assert _files(opened.ack) == []
    assert kb_desk.ticket(opened.ref)["kb_suggested"] == []
    assert events(kb_desk, opened.ref, "kb_suggested") == []


def test_kb_in_an_agent_reply_puts_the_article_into_the_relayed_mail(kb_desk: Desk) -> None:
    opened = open_ticket(kb_desk, "Locked out", "I typed my password wrong too often.")
    carol = Mailbox(kb_desk, CAROL)
    reply(kb_desk, opened.notice, "#kb password-reset\n\nThis should get you back in.")
    [relayed] = carol.next()
    body = _text(relayed)
    assert "This should get you back in." in body
    assert "Reset your password" in body and "account.example.com/reset" in body
    assert "#kb" not in body


def test_kb_with_an_unknown_or_agents_only_article_changes_nothing(kb_desk: Desk) -> None:
    opened = open_ticket(kb_desk, "Locked out", "I typed my password wrong too often.")
    carol, alice = Mailbox(kb_desk, CAROL), Mailbox(kb_desk, ALICE)
    reply(kb_desk, opened.notice, "#kb no-such-article\n\nSee this.")
    [error] = alice.next()
    assert "no article 'no-such-article'" in _text(error)
    reply(kb_desk, opened.notice, "#kb escalate-to-network-team\n\nSee this.")
    [error] = alice.next()
    assert "for agents only" in _text(error)
    assert carol.nothing_new()


def test_kb_draft_is_kept_until_published(kb_desk: Desk, tmp_path: Path) -> None:
    opened = open_ticket(kb_desk, "VPN on hotel Wi-Fi", "The VPN fails in my hotel.")
    carol = Mailbox(kb_desk, CAROL)
    answer = "Hotel networks often block VPN traffic: connect through your phone's hotspot."
    reply(kb_desk, opened.notice, f"#kb-draft VPN from a hotel\n\n{answer}")
    carol.next()  # the answer itself is relayed as usual
    draft = tmp_path / "kb" / "drafts" / "vpn-from-a-hotel.md"
    assert draft.is_file()
    assert kb_desk.cli("kb", "show", "vpn-from-a-hotel")[0] != 0  # a draft is not suggested
    code, out = kb_desk.cli("kb", "publish", "vpn-from-a-hotel")
    assert code == 0, out
    assert not draft.exists() and (tmp_path / "kb" / "vpn-from-a-hotel.md").is_file()
    shown = kb_desk.json("kb", "show", "vpn-from-a-hotel")
    assert shown["title"] == "VPN from a hotel" and answer in shown["body"]
    assert shown["queues"] == ["it"] and shown["audience"] == "public"
    [event] = events(kb_desk, opened.ref, "kb_draft")
    assert event["data"]["slug"] == "vpn-from-a-hotel"


def test_example_config_suggests_the_vpn_article_and_search_finds_the_ticket(
    tmp_path: Path,
) -> None:
    """The example maildesk.toml with its kb/ folder, as a new user has it."""
    from tests.cli.test_cli import REPO, maildesk

    shutil.copy(REPO / "maildesk.toml", tmp_path / "maildesk.toml")
    shutil.copytree(SAMPLE_KB, tmp_path / "kb")
    config = str(tmp_path / "maildesk.toml")
    raw = (
        b"From: Carol <carol@example.org>\r\nTo: support@example.com\r\n"
        b"Subject: VPN does not connect\r\nMessage-ID: <vpn-1@example.org>\r\n\r\n"
        b"Since this morning.\r\n"
    )
    done = maildesk("deliver", "--config", config, stdin=raw)
    assert done.returncode == 0, done.stderr
    shown = json.loads(maildesk("ticket", "show", "MD-1", "--json", "--config", config).stdout)
    assert shown["kb_suggested"][0] == "vpn-does-not-connect"
    [ack] = [m for m in shown["messages"] if m["kind"] == "acknowledgement"]
    assert "* VPN does not connect (attached)" in ack["body_text"]
    found = json.loads(maildesk("search", "vpn", "--json", "--config", config).stdout)
    assert [r["ref"] for r in found] == ["MD-1"]


def test_an_imported_question_records_no_suggestion(kb_desk: Desk, tmp_path: Path) -> None:
    """`maildesk import` mails nobody, so nothing is suggested: no `kb_suggested` on the
    imported ticket, its acknowledgement recorded as not sent."""
    msg = EmailMessage()
    msg["From"] = "dave@example.org"
    msg["To"] = "support@example.com"
    msg["Subject"] = "VPN does not connect"
    msg["Message-ID"] = "<imported-vpn@example.org>"
    msg["Date"] = "Mon, 02 Nov 2026 09:00:00 +0000"
    msg.set_content("Since this morning the VPN client will not connect.")
    box = mailbox.mbox(tmp_path / "history.mbox")
    box.add(msg)
    box.close()
    code, out = kb_desk.cli("import", str(tmp_path / "history.mbox"))
    assert code == 0, out
    assert "1 acknowledgement" in out
    [ticket] = json.loads(kb_desk.cli("tickets", "--json")[1])
    assert kb_desk.ticket(ticket["ref"])["kb_suggested"] == []
    assert events(kb_desk, ticket["ref"], "kb_suggested") == []
    suppressed = events(kb_desk, ticket["ref"], "notification_suppressed")
    assert [e["data"]["notification"] for e in suppressed][:1] == ["acknowledgement"]
