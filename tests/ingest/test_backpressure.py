"""Back-pressure: past `[smtp] max_backlog` stored messages pending, SMTP DATA gets 451 4.3.2
before the message is read and `maildesk deliver` exits 75, until the backlog drains; one log
line when deferring starts and one when it ends; a metric counts the deferred."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import smtplib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from maildesk.app import App
from maildesk.config import load_config
from maildesk.errors import ConfigError
from maildesk.ingest import inbox
from maildesk.ingest.backlog import Backlog
from maildesk.ingest.smtp import IngestHandler
from tests.conftest import Sink, listener_thread, mail, run_maildesk, running_desk, wait_until

BACKLOG_LOG = "maildesk.ingest.backlog"


def _with_smtp(config: Path, line: str) -> Path:
    """Add a line to the [smtp] section of a config written by write_config."""
    body = config.read_text(encoding="utf-8")
    config.write_text(body.replace("[smtp]\n", f"[smtp]\n{line}\n", 1), encoding="utf-8")
    return config


@pytest.fixture
def sqlite_app(tmp_path: Path, write_config: Callable[..., Path]) -> Iterator[App]:
    built = App.build(load_config(write_config(f"sqlite:///{tmp_path / 'md.db'}")))
    try:
        yield built
    finally:
        built.close()


def _send(port: int, subject: str) -> tuple[int, bytes]:
    """(code, text) of the reply to DATA (250 when the message was taken)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        try:
            smtp.send_message(mail(subject))
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error
    return 250, b""


def _pending(app: App) -> int:
    return inbox.pending_count(app, 1_000_000)


def _drain(app: App) -> None:
    """What the pipeline does to the backlog: nothing is pending any more."""
    with app.engine.begin() as conn:
        conn.execute(text("UPDATE raw_messages SET status = 'processed'"))


@contextlib.contextmanager
def listening(app: App, backlog: Backlog) -> Iterator[int]:
    """The SMTP listener in an event loop of its own, storing into `app`, held to `backlog`."""

    def handler_for(loop: asyncio.AbstractEventLoop) -> IngestHandler:
        async def store(raw: bytes, mail_from: str | None, rcpts: list[str]) -> int:
            return await loop.run_in_executor(
                None,
                lambda: inbox.store_raw(
                    app, raw, origin="smtp", envelope_from=mail_from, envelope_to=rcpts
                ),
            )

        accept = frozenset(app.config.smtp.accept)
        return IngestHandler(store, lambda: accept, metrics=app.metrics, backlog=backlog)

    with listener_thread(handler_for) as port:
        yield port


def _backlog(app: App, limit: int, refresh: float) -> Backlog:
    backlog = Backlog(
        lambda cap: inbox.pending_count(app, cap),
        lambda: limit,
        metrics=app.metrics,
        refresh=refresh,
    )
    asyncio.run(backlog.refresh())  # as the daemon does before it listens
    return backlog


def _deferred(app: App) -> float:
    found = re.search(
        rb'maildesk_messages_deferred_total\{reason="backlog",source="smtp"\} (\S+)',
        app.metrics.exposition(),
    )
    return float(found.group(1)) if found else 0.0


def _lines(caplog: pytest.LogCaptureFixture, words: str) -> int:
    return sum(words in r.getMessage() for r in caplog.records if r.name == BACKLOG_LOG)


def test_smtp_defers_at_data_past_max_backlog_until_it_drains(
    sqlite_app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=BACKLOG_LOG)
    for n in range(2):
        inbox.store_raw(sqlite_app, mail(f"Waiting {n}").as_bytes(), origin="smtp")
    backlog = _backlog(sqlite_app, limit=2, refresh=0.05)
    with listening(sqlite_app, backlog) as port:
        for _ in range(3):
            code, reply = _send(port, "One too many")
            assert (code, reply[:5]) == (451, b"4.3.2")
        assert _pending(sqlite_app) == 2  # nothing of the deferred mail was taken
        assert _deferred(sqlite_app) == 3
        assert _lines(caplog, "deferring new mail") == 1  # not one line per message

        _drain(sqlite_app)
        wait_until(lambda: _send(port, "After the drain")[0] == 250, timeout=10)
        assert _pending(sqlite_app) == 1
        assert _lines(caplog, "accepting") == 1
        assert _send(port, "And another")[0] == 250
    assert _lines(caplog, "deferring new mail") == 1


def test_mail_taken_counts_at_once_without_a_look_at_the_store(sqlite_app: App) -> None:
    backlog = _backlog(sqlite_app, limit=3, refresh=3600.0)  # the store is not asked again
    with listening(sqlite_app, backlog) as port:
        assert [_send(port, f"Mail {n}")[0] for n in range(3)] == [250, 250, 250]
        assert _send(port, "The fourth")[0] == 451
    assert _pending(sqlite_app) == 3


def test_max_backlog_0_sets_no_bound(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    config = _with_smtp(write_config(f"sqlite:///{tmp_path / 'md.db'}"), "max_backlog = 0")
    app = App.build(load_config(config))
    try:
        for n in range(3):
            inbox.store_raw(app, mail(f"Waiting {n}").as_bytes(), origin="smtp")
        backlog = Backlog(lambda cap: inbox.pending_count(app, cap), lambda: 0, refresh=0.0)
        with listening(app, backlog) as port:
            assert _send(port, "Welcome any time")[0] == 250
        assert _deliver(config, mail("By pipe")) == (0, "")
    finally:
        app.close()


def test_max_backlog_default_and_checks(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}")
    assert load_config(config).smtp.max_backlog == 10_000
    for value in ("-1", '"lots"', "1.5"):
        _with_smtp(write_config(f"sqlite:///{tmp_path / 'md.db'}"), f"max_backlog = {value}")
        with pytest.raises(ConfigError) as caught:
            load_config(config)
        assert "[smtp] key 'max_backlog'" in str(caught.value)
        assert "whole number from 0" in str(caught.value)


def _deliver(config: Path, message: EmailMessage) -> tuple[int, str]:
    """`maildesk deliver` with the message on its stdin; (exit code, what it said)."""
    ran = run_maildesk(
        "deliver", "--config", str(config), "--recipient", "support@example.com",
        stdin=message.as_bytes(),
    )  # fmt: skip
    return ran.returncode, ran.stdout + ran.stderr


def test_deliver_exits_75_past_max_backlog(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = _with_smtp(write_config(f"sqlite:///{tmp_path / 'md.db'}"), "max_backlog = 1")
    app = App.build(load_config(config))
    try:
        inbox.store_raw(app, mail("Waiting").as_bytes(), origin="smtp")
        code, said = _deliver(config, mail("Piped in"))
        assert code == 75, said
        assert "max_backlog" in said and "deferred" in said
        assert _pending(app) == 1

        _drain(app)
        assert _deliver(config, mail("Piped in")) == (0, "")
        assert _pending(app) == 0  # deliver runs the pipeline itself
    finally:
        app.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_daemon_defers_while_its_pipeline_is_held_up(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    config = _with_smtp(write_config(db_url, sink.port, busy_timeout="30s"), "max_backlog = 2")
    app = App.build(load_config(config))
    for n in range(2):
        inbox.store_raw(app, mail(f"Waiting {n}").as_bytes(), origin="smtp")
    app.close()
    engine = create_engine(db_url)
    with engine.connect() as held:
        # Another session holds the pending rows: the pipeline cannot take them, so the
        # backlog stays at max_backlog while the desk runs.
        held.execute(text("SELECT id FROM raw_messages FOR UPDATE"))
        with running_desk(config, sink) as desk:
            try:
                code, reply = _send(desk.port, "One too many")
                assert (code, reply[:5]) == (451, b"4.3.2")
            finally:
                held.rollback()
            desk.wait_tickets(2)
            wait_until(lambda: _send(desk.port, "Welcome again")[0] == 250, timeout=10)
            assert len(desk.wait_tickets(3)) == 3
    engine.dispose()
