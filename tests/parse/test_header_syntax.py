"""Real mail is mail: a byte-order mark before the first header, an indented or folded first
header line and the obsolete `Name :` syntax (RFC 5322 section 4.5) are parsed, not refused
as "not an email message"; the stored bytes stay as they came."""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from maildesk import pipeline
from maildesk.app import App
from maildesk.config import load_config
from maildesk.errors import NotMail
from maildesk.ingest import inbox
from maildesk.parse import looks_like_mail, parse_message, summarise
from maildesk.parse.headers import header_fields, repair_header_block
from maildesk.store.models import Message, RawMessage

BOM = b"\xef\xbb\xbf"
BODY = "Der Drucker im Büro druckt nicht.\r\n".encode()
HEADERS = [
    b"From: Carol Jones <carol@client.example.org>",
    b"To: support@example.com",
    b"Subject: Printer on fire",
    b"Message-ID: <syntax.1@client.example.org>",
    b"Content-Type: text/plain; charset=utf-8",
    b"Content-Transfer-Encoding: 8bit",
]


def raw_mail(headers: list[bytes], *, before: bytes = b"", body: bytes = BODY) -> bytes:
    return before + b"\r\n".join(headers) + b"\r\n\r\n" + body


CASES = {
    "bom": raw_mail(HEADERS, before=BOM),
    "bom-then-blank-line": raw_mail(HEADERS, before=BOM + b"\r\n"),
    "indented-first-field": raw_mail([b"   " + HEADERS[0], *HEADERS[1:]]),
    "tab-indented-first-field": raw_mail([b"\t" + HEADERS[0], *HEADERS[1:]]),
    "continuation-of-nothing": raw_mail(
        [b" by mx.client.example.org with ESMTP id 4711;", b"	Tue, 1 Oct 2024 +0200", *HEADERS]
    ),
    "obsolete-subject-first": raw_mail([b"Subject : Printer on fire", *HEADERS[:2], *HEADERS[3:]]),
    "obsolete-from": raw_mail([b"From\t: Carol Jones <carol@client.example.org>", *HEADERS[1:]]),
    "obsolete-fields-throughout": raw_mail([h.replace(b":", b" :", 1) for h in HEADERS]),
    "all-at-once": raw_mail(
        [b"  Subject :  Printer on fire", HEADERS[0], b"To   : support@example.com", *HEADERS[3:]],
        before=BOM,
    ),
}


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_bent_header_syntax_is_parsed(raw: bytes) -> None:
    assert looks_like_mail(raw)
    parsed = parse_message(raw)
    assert parsed.subject == "Printer on fire"
    assert (parsed.from_addr, parsed.from_name) == ("carol@client.example.org", "Carol Jones")
    assert parsed.to == ("support@example.com",)
    assert parsed.message_id == "<syntax.1@client.example.org>"
    assert parsed.body_text == "Der Drucker im Büro druckt nicht."
    assert parsed.size == len(raw)
    summary = summarise(raw)
    assert (summary.from_addr, summary.subject) == ("carol@client.example.org", "Printer on fire")


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_fields_are_the_ones_the_email_package_sees_in_the_repaired_block(raw: bytes) -> None:
    repaired = repair_header_block(raw)
    seen = [name.lower() for name in email.message_from_bytes(repaired)]
    assert [name for name, _ in header_fields(repaired)] == seen
    assert [name for name, _ in parse_message(raw).raw_headers] == seen
    assert repaired.endswith(b"\r\n\r\n" + BODY)  # the body is not touched


def test_fields_after_an_obsolete_field_are_header_fields() -> None:
    # Postfix (is_header) and Exim read `Name :` as a field, so the lines after it are header
    # fields for the MTA too, not body.
    raw = raw_mail(
        [*HEADERS[:2], b"X-Ticket : 4711", b"Auto-Submitted: auto-replied", *HEADERS[2:]]
    )
    parsed = parse_message(raw)
    assert parsed.header("x-ticket") == "4711"
    assert parsed.header("auto-submitted") == "auto-replied"
    assert parsed.subject == "Printer on fire"
    assert parsed.body_text == "Der Drucker im Büro druckt nicht."


def test_a_value_holding_space_colon_is_not_rewritten() -> None:
    raw = raw_mail([HEADERS[0], b"Subject: Re : Drucker : kaputt", *HEADERS[2:]])
    assert parse_message(raw).subject == "Re : Drucker : kaputt"


def test_a_folded_value_keeps_its_continuation() -> None:
    raw = raw_mail([b" " + HEADERS[0], b"Subject: Printer", b"  on fire", *HEADERS[3:]])
    parsed = parse_message(raw)
    assert parsed.subject == "Printer on fire"
    assert parsed.from_addr == "carol@client.example.org"


@pytest.mark.parametrize(
    "raw",
    [
        BOM,
        BOM + b"   \r\n\r\n",
        BOM + b"hello world, there are no headers here\n",
        b"   indented text without any header\r\nand more text\r\n",
        b"\tSubject without colon\n\nbody",
        b"Two Words : are no field name\n\nbody",
    ],
)
def test_what_is_still_no_mail_is_refused(raw: bytes) -> None:
    assert looks_like_mail(raw) is False
    with pytest.raises(NotMail):
        parse_message(raw)


@pytest.fixture
def app(db_url: str, write_config: Callable[..., Path]) -> Iterator[App]:
    built = App.build(load_config(write_config(db_url)))
    try:
        yield built
    finally:
        built.close()


def test_bent_mail_becomes_a_ticket_and_its_bytes_are_stored_as_they_came(app: App) -> None:
    raw = CASES["all-at-once"]
    raw_id = inbox.store_raw(
        app, raw, origin="import", envelope_from=None, envelope_to=["support@example.com"]
    )
    outcome = pipeline.process(app, raw_id)
    assert outcome.status == "created", outcome.reason
    with app.sessions() as s:
        assert s.get_one(RawMessage, raw_id).raw == raw
        stored = s.scalar(select(Message).where(Message.raw_id == raw_id))
        assert stored is not None
        assert (stored.subject, stored.from_addr) == ("Printer on fire", "carol@client.example.org")
        assert stored.body_text == "Der Drucker im Büro druckt nicht."
