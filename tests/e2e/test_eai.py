"""Internationalised addresses end to end (RFC 6531, 6532): a requester whose address is not
ASCII writes in over SMTPUTF8, is stored under one spelling of the address, and is answered:
with SMTPUTF8 by a smarthost that offers it, in IDNA form where the local part is ASCII, and
otherwise that one notification fails with its reason while the next one goes out."""

from __future__ import annotations

import contextlib
import logging
import smtplib
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from maildesk.parse.headers import header_fields
from maildesk.parse.parser import parse_message
from maildesk.store.models import RawMessage
from tests.conftest import Desk, Sink, _SinkHandler, free_port, running_desk, wait_until

JORAN = "jöran@exämple.se"


class RecordingHandler(_SinkHandler):
    """The test sink, also noting whether each message came with SMTPUTF8."""

    def __init__(self, sink: Sink) -> None:
        super().__init__(sink)
        self.smtputf8: dict[tuple[str, ...], bool] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.smtputf8[tuple(envelope.rcpt_tos)] = bool(envelope.smtp_utf8)
        return await super().handle_DATA(server, session, envelope)


@contextlib.contextmanager
def smarthost(*, smtputf8: bool) -> Iterator[tuple[Sink, RecordingHandler]]:
    sink = Sink(port=free_port())
    handler = RecordingHandler(sink)
    controller = Controller(handler, hostname="127.0.0.1", port=sink.port, enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield sink, handler
    finally:
        controller.stop()


@contextlib.contextmanager
def desk_via(
    db_url: str, write_config: Callable[..., Path], *, smtputf8: bool
) -> Iterator[tuple[Desk, RecordingHandler]]:
    """A running desk whose smarthost offers SMTPUTF8 or does not."""
    with (
        smarthost(smtputf8=smtputf8) as (sink, handler),
        running_desk(write_config(db_url, sink.port), sink) as desk,
    ):
        yield desk, handler


def eai_mail(from_header: str, subject: str = "Skrivaren brinner") -> bytes:
    """A message with raw UTF-8 headers (RFC 6532), as an SMTPUTF8 client sends it."""
    return (
        f"From: {from_header}\r\n"
        "To: support@example.com\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@client.exämple.se>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Hjälp, den brinner.\r\n"
    ).encode()


def send_smtputf8(desk: Desk, mail_from: str, raw: bytes) -> dict[str, Any]:
    with smtplib.SMTP("127.0.0.1", desk.port, timeout=10) as smtp:
        return smtp.sendmail(mail_from, ["support@example.com"], raw, mail_options=["SMTPUTF8"])


def received_to(sink: Sink, rcpt: str) -> list[bytes]:
    with sink.lock:
        return [raw for _, rcpts, raw in sink.messages if rcpt in rcpts]


def to_header(raw: bytes) -> bytes:
    return dict(header_fields(raw))["to"]


def outbox(desk: Desk, kind: str) -> list[dict[str, Any]]:
    return [e for e in desk.json("outbox") if e["kind"] == kind]


@pytest.mark.parametrize(
    "from_header",
    [f"Jöran <{JORAN}>", f"=?utf-8?q?J=C3=B6ran?= <{JORAN}>"],
    ids=["utf8-name", "encoded-word-name"],
)
def test_eai_requester_is_stored_and_acknowledged_with_smtputf8(
    db_url: str, write_config: Callable[..., Path], from_header: str
) -> None:
    with desk_via(db_url, write_config, smtputf8=True) as (desk, handler):
        sink = desk.sink
        assert send_smtputf8(desk, JORAN, eai_mail(from_header)) == {}
        [ticket] = desk.wait_tickets(1)
        assert ticket["requester"] == JORAN
        with desk.app.sessions() as s:
            assert list(s.scalars(select(RawMessage.envelope_from))) == [JORAN]
        sink.wait_for(2)  # the acknowledgement and the agent notice
        [ack] = received_to(sink, JORAN)
        assert handler.smtputf8[(JORAN,)] is True
        assert to_header(ack) == JORAN.encode()  # raw UTF-8, no encoded-word
        assert parse_message(ack).to == (JORAN,)
        assert handler.smtputf8[("alice@example.com",)] is False  # only where needed
        wait_until(lambda: {e["status"] for e in desk.json("outbox")} == {"sent"})


def test_chinese_address_is_acknowledged_with_smtputf8(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    address = "用户@例子.中国"
    with desk_via(db_url, write_config, smtputf8=True) as (desk, handler):
        sink = desk.sink
        send_smtputf8(desk, address, eai_mail(f"用户 <{address}>", "打印机坏了"))
        [ticket] = desk.wait_tickets(1)
        assert ticket["requester"] == address
        assert ticket["subject"] == "打印机坏了"
        sink.wait_for(2)
        [ack] = received_to(sink, address)
        assert to_header(ack) == address.encode()
        assert handler.smtputf8[(address,)] is True


def test_without_smtputf8_the_eai_entry_fails_and_the_agent_notice_goes_out(
    db_url: str, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    """The reported failure: the acknowledgement to an EAI requester and the agent notice
    after it in one batch, to a smarthost without SMTPUTF8."""
    caplog.set_level(logging.INFO, logger="maildesk")
    with desk_via(db_url, write_config, smtputf8=False) as (desk, _handler):
        sink = desk.sink
        send_smtputf8(desk, JORAN, eai_mail(f"Jöran <{JORAN}>"))
        [ack] = wait_until(
            lambda: [e for e in outbox(desk, "acknowledgement") if e["status"] == "failed"]
        )
        [notice] = wait_until(
            lambda: [e for e in outbox(desk, "agent_new_ticket") if e["status"] == "sent"]
        )
        assert ack["id"] < notice["id"]  # the EAI entry came first in the batch
        assert ack["attempts"] == 1, "a permanent failure: not retried"
        assert ack["last_error"] == (
            f"recipient {JORAN} needs SMTPUTF8, which 127.0.0.1:{sink.port} does not offer"
        )
        [delivered] = sink.wait_for(1)
        assert "alice@example.com" in str(delivered["To"])
        assert received_to(sink, JORAN) == []
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a known failure"


def test_ascii_local_part_goes_as_idna_to_a_smarthost_without_smtputf8(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    with desk_via(db_url, write_config, smtputf8=False) as (desk, handler):
        sink = desk.sink
        send_smtputf8(desk, "info@exämple.se", eai_mail("Info <info@exämple.se>"))
        [ticket] = desk.wait_tickets(1)
        assert ticket["requester"] == "info@exämple.se"
        sink.wait_for(2)
        [ack] = received_to(sink, "info@xn--exmple-cua.se")
        assert to_header(ack) == b"info@xn--exmple-cua.se"
        assert handler.smtputf8[("info@xn--exmple-cua.se",)] is False
        wait_until(lambda: {e["status"] for e in desk.json("outbox")} == {"sent"})


def test_idna_and_unicode_domain_are_one_requester(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    with desk_via(db_url, write_config, smtputf8=True) as (desk, _handler):
        send_smtputf8(desk, JORAN, eai_mail(f"Jöran <{JORAN}>", "First"))
        desk.wait_tickets(1)
        # The same mailbox, spelt with capitals, a decomposed ö and the A-label domain.
        other = "JO\u0308RAN@XN--EXMPLE-CUA.SE"
        send_smtputf8(desk, other, eai_mail(f"Jöran <{other}>", "Second"))
        tickets = desk.wait_tickets(2)
        assert {t["requester"] for t in tickets} == {JORAN}
        assert desk.count_of("contacts") == 1


def test_addresses_that_are_not_utf8_get_553_and_the_session_goes_on(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    with (
        desk_via(db_url, write_config, smtputf8=True) as (desk, _handler),
        socket.create_connection(("127.0.0.1", desk.port), timeout=10) as conn,
        conn.makefile("rb") as replies,
    ):

        def command(line: bytes) -> bytes:
            """Send a command line; its reply, every line of it."""
            conn.sendall(line + b"\r\n")
            lines = [replies.readline()]
            while lines[-1][3:4] == b"-":
                lines.append(replies.readline())
            return b"".join(lines)

        assert replies.readline().startswith(b"220")
        assert b"250-SMTPUTF8" in command(b"EHLO client")
        assert command(b"MAIL FROM:<j\xffran@ex\xc3\xa4mple.se> SMTPUTF8").startswith(b"553 5.1.7")
        assert command(b"MAIL FROM:<" + JORAN.encode() + b"> SMTPUTF8").startswith(b"250")
        assert command(b"RCPT TO:<supp\xffort@example.com>").startswith(b"553 5.1.3")
        assert command(b"RCPT TO:<support@example.com>").startswith(b"250")
        assert command(b"DATA").startswith(b"354")
        assert command(eai_mail(f"Jöran <{JORAN}>") + b"\r\n.").startswith(b"250")
        assert command(b"QUIT").startswith(b"221")
        [ticket] = desk.wait_tickets(1)
        assert ticket["requester"] == JORAN
        assert desk.raw_statuses() == ["processed"]
