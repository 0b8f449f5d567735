"""Internationalised addresses on the way out, and one bad notification never harming
another: the one spelling of an address, the address headers composed, and the SMTP
transport against real smarthosts with and without SMTPUTF8, failing in every way."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from maildesk.config import load_config
from maildesk.mail.address import ascii_address, normalise_address
from maildesk.mail.render import Envelope, Rendered, compose
from maildesk.mail.transport import DeliveryError, SmtpTransport, transport_for
from maildesk.parse.headers import header_fields
from maildesk.parse.parser import parse_message
from maildesk.routing.proof import authentication_results
from tests.conftest import Sink, _SinkHandler, free_port, mail, running_desk, wait_until

JORAN = "jöran@exämple.se"
GOOD = "alice@example.com"

# --- one spelling per mailbox -----------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        JORAN,
        "Jöran@Exämple.SE",
        "JÖRAN@xn--exmple-cua.se",
        "jöran@XN--EXMPLE-CUA.SE",
        "jo\u0308ran@exa\u0308mple.se",  # decomposed (NFD) ö and ä
        "jöran@exämple。se",  # an ideographic full stop between the labels
    ],
)
def test_every_spelling_of_a_mailbox_normalises_to_one(spelling: str) -> None:
    assert normalise_address(spelling) == JORAN
    assert normalise_address(JORAN) == JORAN


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("用户@xn--fsqu00a.xn--fiqs8s", "用户@例子.中国"),
        ("Carol@Example.ORG", "carol@example.org"),
        ("a@xn--abc.se", "a@xn--abc.se"),  # decodes to control characters: kept as sent
        ("a@xn--zz!!.se", "a@xn--zz!!.se"),  # not Punycode at all
        ("a@[192.0.2.1]", "a@[192.0.2.1]"),
    ],
)
def test_a_labels_are_decoded_only_when_they_are_canonical(address: str, stored: str) -> None:
    assert normalise_address(address) == stored
    assert normalise_address(stored) == stored


@pytest.mark.parametrize(
    ("address", "ascii"),
    [
        ("info@exämple.se", "info@xn--exmple-cua.se"),
        ("x@例子.中国", "x@xn--fsqu00a.xn--fiqs8s"),
        ("x@straße.de", "x@xn--strae-oqa.de"),  # IDNA 2008: ß is kept, not mapped to ss
        ("carol@example.org", "carol@example.org"),
        (JORAN, None),  # the local part is not ASCII: only SMTPUTF8 carries it
        ("用户@例子.中国", None),
        ("x@" + "ä" * 70 + ".se", None),  # a label DNS cannot carry
    ],
)
def test_ascii_form_is_the_idna_domain_with_an_ascii_local_part(
    address: str, ascii: str | None
) -> None:
    assert ascii_address(address) == ascii


@pytest.mark.parametrize(
    ("result", "passed"),
    [
        ("dkim=pass header.d=xn--exmple-cua.se", True),
        ("dkim=pass header.d=mail.XN--EXMPLE-CUA.SE", True),
        ("dmarc=pass header.from=xn--exmple-cua.se", True),
        ("dkim=pass header.d=xn--exmple-cub.se", False),
    ],
)
def test_a_dkim_or_dmarc_pass_for_the_a_label_proves_the_unicode_from(
    result: str, passed: bool
) -> None:
    """DKIM and DMARC name the domain as DNS does (A-labels); the stored From has U-labels."""
    headers = [
        ("received", "from mail.exämple.se by mx.example.com with ESMTPS id 1; Tue, 1 Dec 2026"),
        ("authentication-results", f"mx.example.com; {result}"),
        ("from", f"Jöran <{JORAN}>"),
    ]
    assert authentication_results(headers, ["mx.example.com"], JORAN).passed is passed


# --- address headers --------------------------------------------------------------------------


def _composed(to: list[str], cc: tuple[str, ...] = ()) -> bytes:
    env = Envelope(
        from_name="Jöran's desk",
        from_addr="support@exämple.se",
        to=to,
        cc=cc,
        subject="[MD-1] Skrivaren brinner",
        message_id="<1.MD-1@example.com>",
        date=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        reply_to="support+tok@exämple.se",
    )
    return compose(env, Rendered("Skrivaren brinner", "Vi tittar på det.\n", None))


def test_address_headers_carry_raw_utf8_or_idna_never_encoded_words() -> None:
    raw = _composed([JORAN, "用户@例子.中国"], cc=("info@exämple.se",))
    fields = dict(header_fields(raw))
    assert fields["to"] == f"{JORAN}, 用户@例子.中国".encode()
    assert fields["cc"] == b"info@xn--exmple-cua.se"
    assert fields["reply-to"] == b"support+tok@xn--exmple-cua.se"
    assert fields["from"] == b"=?utf-8?q?J=C3=B6ran=27s_desk?= <support@xn--exmple-cua.se>"
    parsed = parse_message(raw)
    assert parsed.to == (JORAN, "用户@例子.中国")
    assert parsed.cc == ("info@exämple.se",)  # the same mailbox as it is stored
    assert parsed.from_name == "Jöran's desk"


def test_a_long_utf8_address_list_is_folded_between_addresses() -> None:
    many = [f"användare{i}@exämple.se" for i in range(60)] + [JORAN]
    raw = _composed(many)
    header = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in header.split(b"\r\n")) < 100
    assert parse_message(raw).to == tuple(many)


def test_a_line_break_in_an_address_cannot_add_a_header() -> None:
    raw = _composed([f"{JORAN}\r\nBcc: eve@evil.example"])
    names = [name for name, _ in header_fields(raw)]
    assert "bcc" not in names and names.count("to") == 1


# --- the SMTP transport against real smarthosts -----------------------------------------------


class Smarthost(_SinkHandler):
    """A sink that refuses what it is told to (per recipient, at RCPT or DATA), and notes
    the MAIL parameters (but SIZE) of what it takes."""

    def __init__(self, sink: Sink) -> None:
        super().__init__(sink)
        self.rcpt_replies: dict[str, str] = {}
        self.data_for: dict[str, str] = {}
        self.options: list[list[str]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.data_for:
                return self.data_for[rcpt]
        self.options.append([o for o in envelope.mail_options if not o.startswith("SIZE=")])
        return await super().handle_DATA(server, session, envelope)


@contextlib.contextmanager
def smarthost(*, smtputf8: bool) -> Iterator[tuple[Sink, Smarthost, SmtpTransport]]:
    sink = Sink(port=free_port())
    handler = Smarthost(sink)
    controller = Controller(handler, hostname="127.0.0.1", port=sink.port, enable_SMTPUTF8=smtputf8)
    controller.start()
    transport = SmtpTransport(Outbound(sink.port))
    try:
        yield sink, handler, transport
    finally:
        transport.close()
        controller.stop()


@dataclass(frozen=True)
class Outbound:
    """`[outbound]` for a smarthost on the loopback."""

    port: int
    transport: str = "smtp"
    host: str = "127.0.0.1"
    path: Path | None = None
    starttls: bool = False
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None
    oauth2: None = None
    timeout: float = 10.0


RAW = b"From: support@example.com\r\nTo: someone\r\nSubject: x\r\n\r\nHello.\r\n"
EAI_RAW = _composed([JORAN])


def test_eai_message_goes_with_smtputf8_and_8bitmime_where_offered() -> None:
    with smarthost(smtputf8=True) as (sink, handler, transport):
        transport.send("support@example.com", [JORAN], EAI_RAW)
        transport.send("support@example.com", [GOOD], RAW)
        assert [rcpts for _, rcpts, _ in sink.messages] == [[JORAN], [GOOD]]
        assert handler.options == [["SMTPUTF8", "BODY=8BITMIME"], []]
        assert sink.messages[0][2] == EAI_RAW


def test_idn_domain_goes_as_idna_where_smtputf8_is_not_offered() -> None:
    with smarthost(smtputf8=False) as (sink, handler, transport):
        transport.send("support@exämple.se", ["info@exämple.se"], RAW)
        [(mail_from, rcpts, _)] = sink.messages
        assert (mail_from, rcpts) == ("support@xn--exmple-cua.se", ["info@xn--exmple-cua.se"])
        assert handler.options == [[]]


# Each way a message can fail within a session, then an ordinary message on the same
# transport: (smarthost offers SMTPUTF8, bad recipient, how the smarthost treats it,
# permanent, what the error says).
FAILURES = {
    "eai-without-smtputf8": (False, JORAN, {}, True, "needs SMTPUTF8, which 127.0.0.1:"),
    "rcpt-550": (True, "nobody@example.com", {"rcpt": "550 5.1.1 no such user"}, True, "550"),
    "rcpt-451": (True, "later@example.com", {"rcpt": "451 4.3.0 try later"}, False, "451"),
    "data-554": (True, "spam@example.com", {"data": "554 5.7.1 rejected"}, True, "554"),
    "data-452": (True, "full@example.com", {"data": "452 4.2.2 mailbox full"}, False, "452"),
    "data-421": (True, "bye@example.com", {"data": "421 4.3.2 closing"}, False, "421"),
    # A recipient smtplib cannot encode even as UTF-8, after MAIL FROM was accepted.
    "unencodable": (True, "bad\udcff@example.com", {}, True, "cannot be sent to 127.0.0.1:"),
}


@pytest.mark.parametrize("case", FAILURES.values(), ids=FAILURES.keys())
def test_after_any_failure_the_next_message_goes_out_on_a_clean_session(
    case: tuple[bool, str, dict[str, str], bool, str],
) -> None:
    smtputf8, bad, refusal, permanent, says = case
    with smarthost(smtputf8=smtputf8) as (sink, handler, transport):
        if "rcpt" in refusal:
            handler.rcpt_replies[bad] = refusal["rcpt"]
        if "data" in refusal:
            handler.data_for[bad] = refusal["data"]
        transport.send("support@example.com", [GOOD], RAW)  # a kept session
        with pytest.raises(DeliveryError) as failed:
            transport.send("support@example.com", [bad], EAI_RAW if bad == JORAN else RAW)
        assert failed.value.permanent is permanent
        assert says in str(failed.value)
        transport.send("support@example.com", ["bob@example.com"], RAW)
        assert [rcpts for _, rcpts, _ in sink.messages] == [[GOOD], ["bob@example.com"]]


def test_a_message_without_recipients_fails_clearly() -> None:
    with smarthost(smtputf8=False) as (_sink, _handler, transport):
        with pytest.raises(DeliveryError, match="no recipients") as failed:
            transport.send("support@example.com", [], RAW)
        assert failed.value.permanent


# --- the sender: every exception is one entry's ---------------------------------------------


class HalfDoneTransport:
    """A transport with a bug: for one recipient it starts a transaction on the real
    session (MAIL FROM accepted) and then raises something that is not a DeliveryError."""

    def __init__(self, real: Any, victim: str) -> None:
        self.real, self.victim = real, victim

    def send(self, sender: str, recipients: list[str], raw: bytes) -> None:
        if self.victim in recipients:
            self.real._session().mail(sender)
            raise RuntimeError("transport bug")
        self.real.send(sender, recipients, raw)

    def close(self) -> None:
        self.real.close()


def test_unexpected_error_is_that_entrys_logged_once_and_retried(
    db_url: str,
    sink: Sink,
    write_config: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="maildesk")
    config = write_config(db_url, sink.port)
    buggy = HalfDoneTransport(transport_for(load_config(config).outbound), "carol@example.org")
    with running_desk(config, sink, transport=buggy) as desk:
        desk.send(mail("Printer on fire"))  # the acknowledgement to carol, a notice to alice
        [ack] = wait_until(
            lambda: [
                e
                for e in desk.json("outbox")
                if e["kind"] == "acknowledgement" and e["status"] == "failed"
            ],
            timeout=20,
        )
        assert ack["attempts"] == 3 and ack["last_error"] == "RuntimeError: transport bug"
        [notice] = sink.wait_for(1)
        assert "alice@example.com" in str(notice["To"])
    tracebacks = [r for r in caplog.records if r.exc_info and "unexpected error" in r.message]
    assert len(tracebacks) == 1, "the traceback once, not at every retry"
