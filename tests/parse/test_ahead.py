"""Parsing ahead in a second process (maildesk.parse.ahead), on the real process: the same
results as parsing here, in order, bounded in flight; a parsing process that dies leaves
the rest to this one; an import that parses ahead stores what one that does not stores."""

from __future__ import annotations

import logging
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from maildesk import pipeline
from maildesk.app import App
from maildesk.config import load_config
from maildesk.ingest import inbox
from maildesk.parse.ahead import ParseAhead, parse_timed
from maildesk.store.db import transaction
from maildesk.store.models import Message, RawMessage, Ticket
from tests.conftest import mail, pid_gone, wait_until

NOT_MAIL = b"\x00\x01 this is no mail at all"


def mailbox(count: int) -> list[bytes]:
    """New requests and replies threading to them, one no mail at all, one twice, and one
    again with other bytes (a header more) but its Message-ID."""
    out: list[bytes] = []
    for n in range(count):
        if n % 3 == 2:  # a reply to the request before it
            raw = mail(
                f"Re: Request {n - 1}",
                "Any news?\n\n> quoted history",
                sender=f"user{n - 1}@client.example.org",
                message_id=f"<r{n}@client.example.org>",
                in_reply_to=f"<m{n - 1}@client.example.org>",
            ).as_bytes()
        else:
            raw = mail(
                f"Request {n}",
                f"Printer {n} is down.",
                sender=f"user{n}@client.example.org",
                message_id=f"<m{n}@client.example.org>",
            ).as_bytes()
        out.append(raw)
    return [*out[:5], NOT_MAIL, out[3], b"X-Copied: again\n" + out[4], *out[5:]]


def counting(raws: list[bytes], seen: list[int]) -> Iterator[bytes]:
    for raw in raws:
        seen.append(1)
        yield raw


def test_results_are_those_of_parsing_here_in_order_and_bounded_in_flight() -> None:
    raws = mailbox(40)
    read: list[int] = []
    with ParseAhead(ahead=4) as ahead:
        got = []
        for raw, parsed in ahead.parsed(counting(raws, read)):
            got.append((raw, parsed))
            # The feeder reads at most `ahead` past what was handed out (plus the one
            # it waits to put in flight).
            assert len(read) <= len(got) + 4 + 1
    assert [raw for raw, _ in got] == raws
    for raw, parsed in got:
        here = parse_timed(raw)
        assert parsed.msg == here.msg
        assert parsed.reason == here.reason
    assert got[5][1].msg is None
    assert (got[5][1].reason or "").startswith("not an email message")
    assert got[0][1].msg is not None and got[0][1].msg.subject == "Request 0"


def test_a_parsing_process_that_dies_leaves_the_rest_to_this_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raws = mailbox(30)
    caplog.set_level(logging.WARNING, "maildesk.parse.ahead")
    with ParseAhead(ahead=4) as ahead:
        proc = ahead._proc
        assert proc is not None
        got = []
        for raw, parsed in ahead.parsed(raws):
            got.append((raw, parsed))
            if len(got) == 3:
                os.kill(proc.pid, signal.SIGKILL)
                wait_until(lambda: proc.poll() is not None, timeout=10)
    assert [raw for raw, _ in got] == raws
    assert [p.msg for _, p in got] == [parse_timed(raw).msg for raw in raws]
    assert "the parsing process stopped" in caplog.text


def test_an_error_reading_the_mail_comes_after_what_was_read() -> None:
    raws = mailbox(6)

    def broken() -> Iterator[bytes]:
        yield from raws[:3]
        raise OSError("the mailbox went away")

    got = []
    with ParseAhead() as ahead, pytest.raises(OSError, match="went away"):
        for raw, _parsed in ahead.parsed(broken()):
            got.append(raw)
    assert got == raws[:3]


def test_leaving_early_stops_the_parsing_process() -> None:
    raws = mailbox(200)
    with ParseAhead(ahead=2) as ahead:
        proc = ahead._proc
        assert proc is not None
        for n, _ in enumerate(ahead.parsed(raws)):
            if n == 2:
                break
    wait_until(lambda: pid_gone(proc.pid) or proc.poll() is not None, timeout=10)


def test_an_import_that_parses_ahead_stores_what_one_that_does_not_stores(
    db_url: str, sqlite_template: Path, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    raws = mailbox(60)
    shutil.copyfile(sqlite_template, tmp_path / "inline.db")
    inline = App.build(load_config(write_config(f"sqlite:///{tmp_path / 'inline.db'}")))
    ahead = App.build(load_config(write_config(db_url)))
    try:
        here = list(pipeline.import_many(inline, raws, save=inbox.save_raw))
        there = list(pipeline.import_many(ahead, raws, save=inbox.save_raw, parse_ahead=True))
        assert here == there
        assert here.count("quarantined") == 1 and here.count("already imported") == 2
        assert "appended" in here and "created" in here
        assert stored(ahead) == stored(inline)
        # A reply's new text (worked out by the parsing process) is what was stored.
        replies = [row for row in stored(ahead) if str(row[0]).startswith("<r")]
        assert replies and {row[2] for row in replies} == {"Any news?"}
        again = list(pipeline.import_many(ahead, raws, save=inbox.save_raw, parse_ahead=True))
        assert again == ["already imported"] * len(raws)
    finally:
        inline.close()
        ahead.close()


def stored(app: App) -> list[tuple[object, ...]]:
    """Every raw message's status, every message with its ticket's subject and its text."""
    with transaction(app.sessions, readonly=True) as session:
        raws = session.execute(select(RawMessage.status).order_by(RawMessage.id)).all()
        messages = session.execute(
            select(Message.message_id, Ticket.subject, Message.body_text, Message.subject)
            .join(Ticket, Ticket.id == Message.ticket_id)
            .where(Message.direction == "in")
            .order_by(Message.message_id)
        ).all()
    return [tuple(r) for r in (*raws, *messages)]
