"""Big mail is stored once: agent notices quote a capped part of the body and name the
ticket for the rest, instead of copying a message's bulk into every agent's notice (as an
outbound message row and again as its outbox bytes).

Figures for the issue (10 MB body / 10 MB attachment, a queue of 3 agents), printed with -s:
    MAILDESK_BIG_MAIL_MB=10 pytest tests/e2e/test_big_mail.py -k "stored_once" -s
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select

from maildesk.config import load_config
from maildesk.notify.context import clip_text
from maildesk.store.models import Attachment, Message, OutboxEntry
from tests.agents import received
from tests.conftest import Desk, Sink, mail, run_cli, running_desk, wait_until

# Big enough that a copy per agent stands out from the capped notices; MAILDESK_BIG_MAIL_MB
# sets the size for the figures (10 MB).
BIG = int(float(os.environ.get("MAILDESK_BIG_MAIL_MB", "2")) * 1000**2)
AGENTS = ("alice@example.com", "dave@example.com", "erin@example.com")  # queue "it"
THREE_AGENTS = """
[[agents]]
email = "dave@example.com"
name = "Dave"
queues = ["it"]

[[agents]]
email = "erin@example.com"
name = "Erin"
queues = ["it"]

[notify]
attach_limit = "1MB"  # below BIG: a file over it is named in the notices, not copied into each
"""


@pytest.fixture
def big_desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    """A desk taking mail up to 30 MB, with three agents in the default queue."""
    with running_desk(
        write_config(db_url, sink.port, extra=THREE_AGENTS, max_size="30MB"), sink
    ) as d:
        yield d


def _text_of(size: int) -> str:
    """Numbered lines (no two alike) of `size` bytes in all."""
    lines, total, n = [], 0, 0
    while total < size:
        line = f"{n:07d} The printer on the third floor prints every page twice, then jams.\n"
        lines.append(line)
        total, n = total + len(line), n + 1
    return "".join(lines)[:size]


def _stored_bytes(desk: Desk, ticket_id: int) -> dict[str, int]:
    """What the store holds for a ticket, by table (texts as UTF-8)."""
    with desk.app.sessions() as s:
        bodies = s.execute(
            select(Message.body_text, Message.body_html).where(Message.ticket_id == ticket_id)
        ).all()
        raws = s.scalars(select(OutboxEntry.raw).where(OutboxEntry.ticket_id == ticket_id))
        files = s.scalars(
            select(Attachment.content)
            .join(Message, Attachment.message_id == Message.id)
            .where(Message.ticket_id == ticket_id)
        )
        return {
            "messages": sum(len(t.encode()) + len(h.encode()) for t, h in bodies),
            "outbox": sum(len(r) for r in raws),
            "attachments": sum(len(c) for c in files),
        }


def _text(notice: EmailMessage) -> str:
    """A notice's text part, with the wire's CRLF line ends as plain newlines."""
    part = notice.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")  # type: ignore[attr-defined]


def _more(text: str, ref: str) -> int:
    """The N of the notice's "(N KB more: maildesk ticket show MD-1)" line."""
    [n] = re.findall(rf"^\((\d+) KB more: maildesk ticket show {ref}\)$", text, re.MULTILINE)
    return int(n)


def _deliver_big(desk: Desk, msg: EmailMessage) -> tuple[dict[str, object], dict[str, int]]:
    """Send `msg`, wait for the acknowledgement and the three agent notices to go out."""
    desk.send(msg)
    [ticket] = desk.wait_tickets(1, timeout=60)
    wait_until(lambda: len(desk.sink.messages) >= 1 + len(AGENTS), timeout=60)
    stored = _stored_bytes(desk, int(str(ticket["id"])))
    print(f"\n{msg['Subject']}: {BIG:,} bytes to {len(AGENTS)} agents: {stored}")
    return ticket, stored


def test_big_body_is_stored_once_and_the_notices_quote_a_part(big_desk: Desk) -> None:
    body = _text_of(BIG)
    ticket, stored = _deliver_big(big_desk, mail("Printer prints twice", body))
    ref = str(ticket["ref"])
    # The inbound text once (as the message's body); each notice is at most 64 KiB of it.
    cap = 64 * 1024
    assert stored["messages"] < BIG + len(AGENTS) * (cap + 4096) + 4096, stored
    assert stored["outbox"] < 2 * len(AGENTS) * (cap + 4096), stored  # with QP's overhead
    for agent in AGENTS:
        [notice] = received(big_desk, agent)
        text = _text(notice)
        assert body[:1000] in text and body[-1000:] not in text
        assert (BIG - cap) // 1000 <= _more(text, ref) <= (BIG - cap) // 1000 + 2
        assert len(text.encode()) < cap + 4096
    # The whole body is still on the ticket, for `maildesk ticket show`.
    [inbound] = [m for m in big_desk.ticket(ref)["messages"] if m["direction"] == "in"]
    assert inbound["body_text"].rstrip("\n") == body.rstrip("\n")


def test_big_attachment_is_stored_once(big_desk: Desk) -> None:
    msg = mail("Scan of the jam", "The scan is attached.")
    blob = os.urandom(BIG)
    msg.add_attachment(blob, maintype="application", subtype="pdf", filename="scan.pdf")
    _, stored = _deliver_big(big_desk, msg)
    assert stored["attachments"] == BIG, stored
    assert stored["messages"] + stored["outbox"] < 64 * 1024, stored
    for agent in AGENTS:
        [notice] = received(big_desk, agent)
        text = _text(notice)
        assert f"1. scan.pdf ({BIG / 1000**2:.1f} MB), not attached: maildesk ticket" in text
        assert not list(notice.iter_attachments())


def test_a_big_reply_is_quoted_in_part_to_the_agents(big_desk: Desk) -> None:
    big_desk.send(mail("Printer prints twice", "It started today."))
    [ticket] = big_desk.wait_tickets(1)
    big_desk.sink.wait_for(1 + len(AGENTS))
    [ack] = big_desk.sink.to("carol@example.org")
    body = _text_of(BIG)
    subject = f"Re: [{ticket['ref']}] Printer prints twice"
    big_desk.send(mail(subject, body, in_reply_to=str(ack["Message-ID"])))
    wait_until(lambda: all(len(received(big_desk, a)) == 2 for a in AGENTS), timeout=60)
    for agent in AGENTS:
        text = _text(received(big_desk, agent)[1])
        assert "0000000 The printer" in text and body[-500:] not in text
        assert _more(text, ticket["ref"]) >= (BIG - 64 * 1024) // 1000
    stored = _stored_bytes(big_desk, int(ticket["id"]))
    assert stored["messages"] + stored["outbox"] < BIG + 3 * len(AGENTS) * (64 * 1024 + 4096)


@pytest.mark.parametrize(
    ("text", "limit", "kept", "omitted"),
    [
        ("short", 64, "short", 0),
        ("exactly8", 8, "exactly8", 0),
        ("abcdefghij", 4, "abcd", 6),
        # A character is never cut in two: "é" is 2 bytes, "€" 3.
        ("aé" * 4, 4, "aéa", 8),
        ("€€€", 5, "€", 6),
        # The cut goes back to the end of a line in the second half of what is kept...
        ("line one\nline two\nline three", 22, "line one\nline two", 11),
        # ...but not when that would drop most of it.
        ("a\nbcdefghijklmnop", 10, "a\nbcdefghi", 7),
    ],
)
def test_clip_text_keeps_whole_characters_and_lines(
    text: str, limit: int, kept: str, omitted: int
) -> None:
    assert clip_text(text, limit) == (kept, omitted)
    assert len(kept.encode()) + omitted == len(text.encode())


@contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL every engine in this process runs meanwhile (the daemon's and the CLI's)."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _reads_raw(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("SELECT") and "outbox.raw" in s]


def test_outbox_bytes_are_read_only_to_be_sent(big_desk: Desk) -> None:
    def all_sent() -> list[dict[str, object]] | None:
        rows: list[dict[str, object]] = big_desk.json("outbox")
        return rows if rows and all(e["status"] == "sent" for e in rows) else None

    with _statements() as seen:
        big_desk.send(mail("Printer prints twice"))
        wait_until(lambda: len(big_desk.sink.messages) >= 1 + len(AGENTS))
        assert len(wait_until(all_sent)) == 1 + len(AGENTS)
    # Claiming due entries reads their bytes (to send them); recording the outcomes and
    # `maildesk outbox` do not, however big the queued mail is.
    claims = _reads_raw(seen)
    assert claims and all("next_attempt_at <=" in s for s in claims), claims


def test_a_small_body_is_quoted_whole(desk: Desk) -> None:
    desk.send(mail("Printer on fire", "Help, it is burning.\nSecond line."))
    [ticket] = desk.wait_tickets(1)
    [notice] = wait_until(lambda: received(desk, "alice@example.com"))
    text = _text(notice)
    assert "Help, it is burning.\nSecond line." in text
    assert "more: maildesk ticket show" not in text
    outbound = [m for m in desk.ticket(ticket["ref"])["messages"] if m["direction"] == "out"]
    notice_row = next(m for m in outbound if m["kind"] == "agent_new_ticket")
    assert "Help, it is burning." in notice_row["body_text"]


def test_the_cap_is_a_config_size(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    body = "\n".join(f"line {i:05d} of the printer's error log, all of it" for i in range(200))
    path = write_config(db_url, sink.port, extra='[notify]\nagent_notice_max_body = "1KiB"\n')
    assert load_config(path).notify.agent_notice_max_body == 1024
    with running_desk(path, sink) as desk:
        desk.send(mail("Printer log", body))
        [ticket] = desk.wait_tickets(1)
        [notice] = wait_until(lambda: received(desk, "alice@example.com"))
        text = _text(notice)
        left = len(body.encode()) - 1024
        assert "line 00000" in text and "line 00199" not in text
        assert left // 1000 <= _more(text, ticket["ref"]) <= left // 1000 + 2
        assert len(text.encode()) < 1024 + 2048
        [row] = [
            m for m in desk.ticket(ticket["ref"])["messages"] if m["kind"] == "agent_new_ticket"
        ]
        assert len(row["body_text"].encode()) < 1024 + 2048


def test_a_bad_cap_names_file_section_and_key(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    path = write_config(
        f"sqlite:///{tmp_path / 'md.db'}", extra='[notify]\nagent_notice_max_body = "lots"\n'
    )
    code, out = run_cli("check-config", "--config", str(path))
    assert code == 2
    assert str(path) in out and "[notify]" in out and "agent_notice_max_body" in out
    assert "expected a size" in out
