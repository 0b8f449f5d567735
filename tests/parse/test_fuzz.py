"""Property-based and fuzz tests: whatever bytes arrive, parsing never raises past its two
documented refusals, and the pipeline never raises past the quarantine boundary nor loses a
message.

Inputs are hypothesis strategies that build MIME trees, headers and transfer encodings from
the pieces real mail is made of (and the broken pieces mailers get wrong), plus byte-wise
mutations of real messages (tests/data/realworld and CPython's test_email data). Example
counts and deadlines are sized for a loaded two-core machine.
"""

from __future__ import annotations

import base64
import os
import quopri
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from maildesk import pipeline
from maildesk.app import App
from maildesk.config import load_config
from maildesk.errors import MessageTooComplex, NotMail
from maildesk.ingest import inbox
from maildesk.parse import (
    MAX_ADDRESS,
    MAX_NAME,
    MAX_SUBJECT,
    ParsedMessage,
    parse_message,
)
from maildesk.store.models import Message, RawMessage

REALWORLD = Path(__file__).resolve().parents[1] / "data" / "realworld"
CPYTHON = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
SEEDS = sorted(REALWORLD.glob("*.eml")) + sorted(CPYTHON.glob("msg_*.txt"))[:48]
FINAL = {"processed", "duplicate", "ignored", "quarantined", "spam", "flood", "bounce"}

# MAILDESK_FUZZ_EXAMPLES=5000 for a longer hunt; the default keeps `make test` quick.
EXAMPLES = int(os.environ.get("MAILDESK_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=2000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PIPELINE = settings(
    max_examples=max(EXAMPLES // 6, 1),
    deadline=None,  # a PostgreSQL commit on a busy machine has no useful bound
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# --- the pieces -----------------------------------------------------------------------------

CHARSETS = [
    "utf-8", "us-ascii", "iso-8859-1", "windows-1252", "koi8-r", "gb18030", "gb2312",
    "iso-2022-jp", "shift_jis", "euc-kr", "utf-7", "utf-16", "x-unknown", "unknown-8bit",
    "base64", "rot13", "", "utf-8\x00", "\"utf-8",
]  # fmt: skip
ENCODINGS = ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus", ""]
TEXTS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80
) | st.sampled_from(
    ["Printer on fire", "Grüße aus Köln", "Принтер не печатает", "邮箱无法登录",
     "プリンターが動きません", "line\r\nBcc: victim@example.net", "=?utf-8?q?=FF?=", "\x00"]
)  # fmt: skip
RAW_BYTES = st.binary(max_size=120)


def encode_text(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset.strip('"\x00') or "us-ascii")
    except (LookupError, UnicodeError):
        return text.encode("utf-8")


@st.composite
def encoded_word(draw: st.DrawFn) -> bytes:
    charset = draw(st.sampled_from(CHARSETS))
    text = draw(TEXTS)
    data = encode_text(text, charset)
    if draw(st.booleans()):
        return b"=?" + charset.encode() + b"?b?" + base64.b64encode(data) + b"?="
    return b"=?" + charset.encode() + b"?q?" + quopri.encodestring(data, header=True) + b"?="


HEADER_VALUE = st.one_of(
    TEXTS.map(lambda t: t.encode("utf-8")),  # raw 8-bit in headers, as scripts send it
    st.lists(encoded_word(), min_size=1, max_size=3).map(b" ".join),
    RAW_BYTES,
    st.sampled_from([b"", b" ", b"<>", b"<@>", b"<a@b>, <c@d>", b'"" <>', b"a@b@c", b"(", b"\\"]),
)
ADDRESS = st.one_of(
    st.sampled_from([b"carol@example.org", b"Carol <carol@example.org>", b"support@example.com",
                     b"mailer-daemon@example.org", b"<>", b"undisclosed-recipients:;"]),
    st.builds(lambda w, a: w + b" <" + a + b">", encoded_word(),
              st.sampled_from([b"x@example.org", b"\xff@example.org", b"a@[127.0.0.1]"])),
    HEADER_VALUE,
)  # fmt: skip
HEADER_NAMES = st.sampled_from([
    b"Subject", b"To", b"Cc", b"Reply-To", b"In-Reply-To", b"References", b"Message-ID", b"Date",
    b"Auto-Submitted", b"Precedence", b"List-Id", b"X-Loop", b"Content-ID", b"X-Weird_1",
    b"subject", b"MESSAGE-ID", b"\xc3\xa4h",
])  # fmt: skip


@st.composite
def header_block(draw: st.DrawFn) -> bytes:
    lines = []
    if draw(st.booleans()):
        lines.append(b"From: " + draw(ADDRESS))
    for _ in range(draw(st.integers(0, 6))):
        name = draw(HEADER_NAMES)
        value = draw(ADDRESS if name in (b"To", b"Cc", b"Reply-To") else HEADER_VALUE)
        if draw(st.integers(0, 5)) == 0:  # folded, or folded wrongly
            value = value.replace(b" ", draw(st.sampled_from([b"\r\n ", b"\r\n", b"\n\t"])), 1)
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n" if lines else b""


def transfer_encode(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(data)
    if encoding == "quoted-printable":
        return quopri.encodestring(data)
    return data


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    ctype = draw(st.sampled_from([
        "text/plain", "text/html", "text/calendar; method=REQUEST", "application/octet-stream",
        "image/png", "application/ms-tnef", "application/pgp-signature", "text/x-weird", "",
        "text", "/", "multipart/mixed",
    ]))  # fmt: skip
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(ENCODINGS))
    payload = encode_text(draw(TEXTS), charset) if draw(st.booleans()) else draw(RAW_BYTES)
    if draw(st.integers(0, 3)) == 0 and encoding == "base64":
        payload = b"!!not base64!!" + payload
    else:
        payload = transfer_encode(payload, encoding)
    head = [f'Content-Type: {ctype}; charset="{charset}"'.encode()]
    if encoding:
        head.append(f"Content-Transfer-Encoding: {encoding}".encode())
    if draw(st.booleans()):
        name = draw(
            st.sampled_from(["../../etc/passwd", "CON", "a\x00b.txt", "x" * 300, "invite.ics"])
            | TEXTS
        )
        head.append(b'Content-Disposition: attachment; filename="' + name.encode() + b'"')
    return b"\r\n".join(head) + b"\r\n\r\n" + payload


@st.composite
def mime_body(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One MIME entity (headers and body): a leaf, a multipart or a forwarded message."""
    kind = draw(st.integers(0, 4)) if depth < 4 else 0
    if kind <= 1:
        return draw(leaf())
    if kind == 4:
        inner = draw(header_block()) + draw(mime_body(depth + 1))
        return b"Content-Type: message/rfc822\r\n\r\n" + inner
    boundary = draw(st.sampled_from([b"b", b"=_x", b"--", b"a b", b"\xff", b"b" * 80]))
    used = boundary if draw(st.integers(0, 4)) else draw(st.sampled_from([b"other", b"b"]))
    subtype = draw(st.sampled_from([b"mixed", b"alternative", b"related", b"signed", b"report"]))
    children = draw(st.lists(mime_body(depth + 1), min_size=0, max_size=4))
    body = draw(st.sampled_from([b"", b"preamble\r\n"]))
    for child in children:
        body += b"--" + used + b"\r\n" + child + b"\r\n"
    if draw(st.integers(0, 3)):
        body += b"--" + used + b"--\r\n"
    return b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"\r\n\r\n' + body


@st.composite
def generated_message(draw: st.DrawFn) -> bytes:
    head = draw(header_block())
    if draw(st.booleans()):
        head += b"MIME-Version: 1.0\r\n"
    return head + draw(mime_body())


@st.composite
def mutated_message(draw: st.DrawFn) -> bytes:
    """A real message, damaged byte-wise the way transports and broken mailers damage mail."""
    data = bytearray(draw(st.sampled_from(SEEDS)).read_bytes())
    tokens = [
        b"\x00", b"\xff", b"\r", b"\n", b"\r\n\r\n", b"--", b"=?", b"?=", b"=?utf-8?b?",
        b"boundary=", b'"', b";", b":", b"<", b">", b"\x80\x81", b"\t", b"=\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n", b"message/rfc822", b"charset=utf-7",
    ]  # fmt: skip
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.integers(0, 4))
        at = draw(st.integers(0, len(data)))
        if op == 0 and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == 1:
            data[at:at] = draw(st.sampled_from(tokens))
        elif op == 2:
            del data[at : at + draw(st.integers(1, 40))]
        elif op == 3:
            start = draw(st.integers(0, len(data)))
            data[at:at] = data[start : start + draw(st.integers(1, 200))]
        elif at > 20:
            del data[at:]
    return bytes(data)


ANY_MESSAGE = st.one_of(generated_message(), mutated_message())

# --- properties -----------------------------------------------------------------------------


def assert_clean(parsed: ParsedMessage) -> None:
    """Every text field can go into any store and any UTF-8 sink, within the column sizes."""
    texts = [
        parsed.subject, parsed.from_addr, parsed.from_name, parsed.body_text,
        parsed.body_html, parsed.message_id, parsed.content_type,
        *parsed.to, *parsed.cc, *parsed.reply_to, *parsed.in_reply_to, *parsed.references,
        *(a.filename for a in parsed.attachments),
        *(a.content_type for a in parsed.attachments),
        *(v for _, v in parsed.headers), *(k for k, _ in parsed.headers),
    ]  # fmt: skip
    for text in texts:
        assert isinstance(text, str)
        assert "\x00" not in text
        text.encode("utf-8")  # raises on a lone surrogate
    assert parsed.message_id.startswith("<") and len(parsed.message_id.encode()) <= 998
    assert len(parsed.subject) <= MAX_SUBJECT
    assert len(parsed.from_addr) <= MAX_ADDRESS and len(parsed.from_name) <= MAX_NAME
    assert all(isinstance(a.content, bytes) for a in parsed.attachments)
    assert all(0 < len(a.filename) <= 200 for a in parsed.attachments)


def parses_or_refuses_cleanly(raw: bytes) -> None:
    """Parsed with clean, bounded fields, or refused as not mail / too complex; nothing else."""
    try:
        parsed = parse_message(raw)
    except (NotMail, MessageTooComplex):
        return
    assert_clean(parsed)


@FUZZ
@given(generated_message())
def test_generated_mime_parses_or_refuses_cleanly(raw: bytes) -> None:
    parses_or_refuses_cleanly(raw)


@FUZZ
@given(mutated_message())
def test_mutated_real_mail_parses_or_refuses_cleanly(raw: bytes) -> None:
    parses_or_refuses_cleanly(raw)


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_refuse_cleanly(raw: bytes) -> None:
    parses_or_refuses_cleanly(raw)


@FUZZ
@given(generated_message())
def test_parsing_is_deterministic(raw: bytes) -> None:
    try:
        first = parse_message(raw)
    except (NotMail, MessageTooComplex) as exc:
        with pytest.raises(type(exc)):
            parse_message(raw)
        return
    assert parse_message(raw) == first


@pytest.fixture
def fuzz_app(db_url: str, write_config: Callable[..., Path]) -> Iterator[App]:
    """An App whose flood guard is off: hypothesis sends many messages from one sender."""
    config = write_config(db_url, max_size="25MB", extra="[notify]\nnew_tickets_per_hour = 0\n")
    built = App.build(load_config(config))
    try:
        yield built
    finally:
        built.close()


@PIPELINE
@given(st.lists(ANY_MESSAGE, min_size=1, max_size=3), st.sampled_from([None, "", "s@example.org"]))
def test_pipeline_never_raises_and_never_loses_a_message(
    fuzz_app: App, batch: list[bytes], envelope_from: str | None
) -> None:
    assume(all(len(raw) < 5_000_000 for raw in batch))
    with fuzz_app.sessions() as s:
        before = s.scalar(select(func.count()).select_from(RawMessage)) or 0
    stored = [
        inbox.store_raw(
            fuzz_app, raw, origin="smtp", envelope_from=envelope_from,
            envelope_to=["support@example.com"],
        )
        for raw in batch
    ]  # fmt: skip
    outcomes = [pipeline.process(fuzz_app, raw_id) for raw_id in stored]  # must not raise
    with fuzz_app.sessions() as s:
        assert (s.scalar(select(func.count()).select_from(RawMessage)) or 0) == before + len(batch)
        for raw, raw_id, outcome in zip(batch, stored, outcomes, strict=True):
            row = s.get_one(RawMessage, raw_id)
            assert row.raw == raw, "the bytes as received are kept"
            assert row.status in FINAL, (row.status, outcome)
            if row.status == "quarantined":
                assert row.reason
            if outcome.status in ("created", "appended", "reopened", "followup"):
                found = s.scalar(select(Message).where(Message.raw_id == raw_id))
                assert found is not None and found.ticket_id == outcome.ticket_id
