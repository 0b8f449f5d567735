"""Hostile input: header injection, hostile attachment names, zip bombs, MIME bombs, and SMTP
clients that pipeline, ramble, dawdle, crowd in or try to relay.

Real parts only: mail goes over sockets to a running desk (or to the listener itself, started
with small limits to show the mechanism), messages go through the real pipeline and store.
"""

from __future__ import annotations

import asyncio
import io
import re
import smtplib
import socket
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maildesk import pipeline
from maildesk.app import App
from maildesk.config import load_config
from maildesk.ingest import inbox
from maildesk.ingest import smtp as smtp_listener
from maildesk.ingest.smtp import IngestHandler
from maildesk.parse import MAX_DEPTH, MAX_PARTS, parse_message
from maildesk.store.models import Attachment, Message, RawMessage
from tests.conftest import Desk, Sink, listener_thread, mail, running_desk, wait_until

RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\.|$)", re.I)


@pytest.fixture
def app(db_url: str, write_config: Callable[..., Path]) -> Iterator[App]:
    built = App.build(load_config(write_config(db_url, max_size="25MB")))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def sqlite_app(tmp_path: Path, write_config: Callable[..., Path]) -> Iterator[App]:
    """An App on SQLite only, for behaviour that does not depend on the store."""
    built = App.build(load_config(write_config(f"sqlite:///{tmp_path / 'md.db'}")))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def sqlite_desk(tmp_path: Path, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    """A running desk on SQLite only: the SMTP behaviour does not depend on the store."""
    with running_desk(write_config(f"sqlite:///{tmp_path / 'md.db'}", sink.port), sink) as d:
        yield d


def process(app: App, raw: bytes, envelope_from: str | None = "x@example.org") -> Any:
    raw_id = inbox.store_raw(
        app, raw, origin="smtp", envelope_from=envelope_from, envelope_to=["support@example.com"]
    )
    return pipeline.process(app, raw_id)


# --- header injection -----------------------------------------------------------------------

INJECTIONS = [
    pytest.param(
        b"Subject: =?utf-8?b?SGVsbG8NCkJjYzogdmljdGltQGV4YW1wbGUubmV0DQoNCmJvZHk=?=\r\n",
        id="encoded-crlf-subject",
    ),
    pytest.param(b"Subject: Hello\rBcc: victim@example.net\r\n", id="bare-cr-subject"),
    pytest.param("Subject: Hello\u2028Bcc: victim@example.net\r\n".encode(), id="u2028-subject"),
    pytest.param("Subject: Hello\x85Bcc: victim@example.net\r\n".encode(), id="nel-subject"),
    pytest.param(b"Subject: =?utf-8?q?Hi=0ABcc:_victim@example.net?=\r\n", id="encoded-lf"),
    pytest.param(b"Subject: " + b"A" * 5000 + b"\r\n", id="5000-char-subject"),
]


@pytest.mark.parametrize("subject", INJECTIONS)
def test_subject_cannot_inject_headers_into_notifications(
    sqlite_desk: Desk, subject: bytes
) -> None:
    raw = (
        b"From: =?utf-8?q?Eve=0D=0ABcc=3A_victim=40example=2Enet?= <eve@example.org>\r\n"
        b"To: support@example.com\r\nMessage-ID: <inject@example.org>\r\n" + subject + b"\r\nhi\r\n"
    )
    sqlite_desk.send(raw, mail_from="eve@example.org")
    for sent in sqlite_desk.sink.wait_for(2):
        assert sent["Bcc"] is None
        assert "victim" not in str(sent["To"]) and "victim" not in str(sent.get("Cc", ""))
        assert "\n" not in str(sent["Subject"]) and "\r" not in str(sent["Subject"])
        assert len(str(sent["Subject"])) < 1200
    for _, rcpts, raw_sent in sqlite_desk.sink.messages:
        assert all("victim" not in r for r in rcpts)
        head = raw_sent.split(b"\r\n\r\n", 1)[0]
        assert not re.search(rb"^Bcc:", head, re.M | re.I), head


def test_template_variables_are_data_not_code(sqlite_desk: Desk) -> None:
    msg = mail(
        "{{ 7*7 }} {% if true %}yes{% endif %} <script>alert(1)</script>",
        "{{ desk.address.__class__ }} {{ ''.__class__.__mro__ }}",
        sender="{{ 6*6 }} <tpl@example.org>",
    )
    sqlite_desk.send(msg)
    sent = sqlite_desk.sink.wait_for(2)
    ack = next(m for m in sent if "tpl@example.org" in str(m["To"]))
    notice = next(m for m in sent if "alice@example.com" in str(m["To"]))
    assert "{{ 7*7 }}" in str(ack["Subject"]) and "49" not in str(ack["Subject"])
    assert "{% if true %}yes{% endif %}" in str(ack["Subject"])
    ack_text = ack.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "{{ 6*6 }}" in ack_text and "36" not in ack_text
    notice_text = notice.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "{{ desk.address.__class__ }}" in notice_text
    assert "<class" not in notice_text and "__mro__" in notice_text
    for m in sent:
        html = m.get_body(preferencelist=("html",))
        if html is not None:
            assert "<script>alert(1)</script>" not in html.get_content()


# --- attachment names, zip bombs ------------------------------------------------------------

HOSTILE_NAMES = [
    "../../../../etc/passwd",
    "..\\..\\boot.ini",
    "/etc/shadow",
    "C:\\Windows\\System32\\drivers\\etc\\hosts",
    "report\x00.pdf.exe",
    "CON",
    "nul.txt",
    "COM1.log",
    "lpt9",
    "aux.tar.gz",
    " . ",
    "x" * 1000 + ".pdf",
    "y" * 1000,
    "\u202egpj.exe",
    'a/b\\c:d*e?f"g<h>i|j.txt',
]


def with_attachments(names: list[str]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Mallory <mallory@example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Files"
    msg["Message-ID"] = "<files@example.org>"
    msg.set_content("See attached.")
    for i, name in enumerate(names):
        msg.add_attachment(f"payload {i}".encode(), maintype="application", subtype="octet-stream")
        # set the raw parameter so the hostile bytes (NUL included) reach the wire as they are
        part = msg.get_payload()[-1]  # type: ignore[index]
        part.replace_header("Content-Disposition", f'attachment; filename="{name}"')
    return msg.as_bytes(policy=policy.compat32)


def test_hostile_attachment_names_are_stored_safe(app: App) -> None:
    outcome = process(app, with_attachments(HOSTILE_NAMES))
    assert outcome.status == "created", outcome
    with app.sessions() as s:
        stored = s.scalars(select(Attachment).order_by(Attachment.id)).all()
        names = [a.filename for a in stored]
        contents = [a.content for a in stored]
    assert contents == [f"payload {i}".encode() for i in range(len(HOSTILE_NAMES))]
    for name in names:
        assert name and len(name) <= 200, name
        assert not any(c in name for c in '/\\\x00:*?"<>|'), name
        assert not name.startswith("."), name
        assert not RESERVED.match(name), name
    # (inside a quoted MIME parameter a backslash escapes the next character)
    assert names[0] == "passwd" and names[2] == "shadow" and names[3].endswith("hosts")
    assert names[5] == "_CON" and names[6] == "_nul.txt" and names[9] == "_aux.tar.gz"
    assert names[11].endswith(".pdf") and names[11].startswith("xxx")


def zip_bomb(uncompressed: int) -> bytes:
    """A zip whose one member inflates to `uncompressed` bytes of zeros (written in chunks)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z,
        z.open("zeros.bin", "w", force_zip64=True) as member,
    ):
        chunk = bytes(1 << 20)
        for _ in range(uncompressed >> 20):
            member.write(chunk)
    return out.getvalue()


def test_zip_bomb_is_stored_as_it_came_never_unpacked(app: App) -> None:
    bomb = zip_bomb(256 << 20)  # 256 MB of zeros in about 250 KB
    assert len(bomb) < 1_000_000
    msg = EmailMessage()
    msg["From"] = "bomber@example.org"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Quarterly figures"
    msg.set_content("Figures attached.")
    msg.add_attachment(bomb, maintype="application", subtype="zip", filename="figures.zip")

    tracemalloc.start()
    started = time.monotonic()
    outcome = process(app, msg.as_bytes())
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert outcome.status == "created", outcome
    assert peak < 64 << 20, f"{peak / 1e6:.0f} MB while processing a {len(bomb)} byte zip"
    assert elapsed < 20
    with app.sessions() as s:
        [att] = s.scalars(select(Attachment)).all()
        assert (att.filename, att.content_type, att.size) == (
            "figures.zip",
            "application/zip",
            len(bomb),
        )
        assert att.content == bomb


# --- MIME bombs: many parts, deep nesting ---------------------------------------------------


def many_parts(count: int) -> bytes:
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(count))
    return (
        "From: a@example.org\r\nTo: support@example.com\r\nSubject: many\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        f"{parts}--b--\r\n"
    ).encode()


def nested_multiparts(depth: int) -> bytes:
    opens = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(depth)
    )
    closes = "".join(f"--b{i}--\r\n" for i in reversed(range(depth)))
    return (
        "From: a@example.org\r\nTo: support@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
        f"{opens}Content-Type: text/plain\r\n\r\ninnermost\r\n{closes}"
    ).encode()


def nested_forwards(depth: int) -> bytes:
    return (
        "From: a@example.org\r\nTo: support@example.com\r\nSubject: fwd\r\n"
        + "Content-Type: message/rfc822\r\n\r\nFrom: b@example.org\r\nSubject: fwd\r\n" * depth
        + "\r\ninnermost\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(many_parts(10_000), f"more than {MAX_PARTS} MIME parts", id="10000-parts"),
        pytest.param(nested_multiparts(100), f"deeper than {MAX_DEPTH} levels", id="100-levels"),
        pytest.param(nested_multiparts(5_000), "MIME parts", id="5000-levels"),
        pytest.param(nested_forwards(2_000), "nested too deeply", id="2000-forwards"),
    ],
)
def test_mime_bombs_are_quarantined_in_bounded_time_and_memory(
    app: App, raw: bytes, reason: str
) -> None:
    tracemalloc.start()
    started = time.monotonic()
    outcome = process(app, raw)
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert outcome.status == "quarantined"
    assert reason in outcome.reason
    assert elapsed < 10, f"{elapsed:.1f}s"
    assert peak < 100 << 20, f"{peak / 1e6:.0f} MB"


def test_limits_leave_real_structures_alone() -> None:
    assert parse_message(nested_multiparts(MAX_DEPTH - 2)).body_text == "innermost"
    assert len(parse_message(many_parts(MAX_PARTS - 1)).body_text.splitlines()) == MAX_PARTS - 1


def test_poison_headers_fit_the_store(app: App) -> None:
    """Values past the store's column sizes must not make a message unprocessable."""
    refs = b" ".join(b"<%d@example.org>" % i for i in range(70_000))
    cases = {
        "long-message-id": b"Message-ID: <" + b"x" * 1200 + b"@example.org>\r\n",
        "wide-message-id": "Message-ID: <{}@example.org>\r\n".format("中" * 800).encode(),
        "70000-references": b"References: " + refs + b"\r\n",
        "long-display-name": b"From: " + b"N" * 400 + b" <n@example.org>\r\n",
        "long-address": b"Cc: " + b"c" * 400 + b"@example.org\r\n",
    }
    for name, header in cases.items():
        sender = b"" if name == "long-display-name" else b"From: p@example.org\r\n"
        raw = sender + b"To: support@example.com\r\nSubject: " + name.encode() + b"\r\n"
        outcome = process(app, raw + header + b"\r\nbody\r\n")
        assert outcome.status == "created", (name, outcome)


def test_bounce_shaped_message_with_many_blank_lines_is_processed_quickly(sqlite_app: App) -> None:
    raw = (
        b"From: MAILER-DAEMON@example.org\r\nTo: support@example.com\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n\r\nx" + b" \r\n" * 8_000
    )
    started = time.monotonic()
    process(sqlite_app, raw, envelope_from="")
    assert time.monotonic() - started < 1.0  # about 4 s as it is; milliseconds when linear


# --- SMTP: a raw client for what smtplib will not do ----------------------------------------


class RawClient:
    """An SMTP client on a bare socket: sends whatever it is told, reads replies by code."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def replies(self, count: int) -> list[str]:
        """The next `count` complete replies (a multi-line reply counts once)."""
        out: list[str] = []
        while len(out) < count:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed after {out}")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            if len(text) >= 4 and text[3] == "-":
                continue
            out.append(text)
        return out

    def closed_by_server(self, timeout: float) -> bool:
        """True once the server has closed the connection (read until EOF, with a deadline)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except OSError:
            return True
        return True

    def close(self) -> None:
        self.sock.close()


def test_pipelined_burst_with_too_many_recipients(sqlite_desk: Desk) -> None:
    rcpts = [f"support+{i}@example.com" for i in range(150)]
    body = b"From: piper@example.org\r\nSubject: pipelined\r\n\r\nall at once\r\n.\r\n"
    burst = (
        b"EHLO piper\r\nMAIL FROM:<piper@example.org>\r\n"
        + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts)
        + b"DATA\r\n"
        + body
        + b"QUIT\r\n"
    )
    client = RawClient(sqlite_desk.port)
    try:
        client.send(burst)  # before even reading the greeting
        replies = client.replies(1 + 1 + 1 + len(rcpts) + 1 + 1 + 1)
    finally:
        client.close()
    greeting, ehlo, mail_from, *rcpt, data, queued, bye = replies
    assert greeting.startswith("220") and ehlo.startswith("250") and mail_from.startswith("250")
    limit = smtp_listener.MAX_RECIPIENTS
    assert all(r.startswith("250") for r in rcpt[:limit])
    assert all(r.startswith("452") for r in rcpt[limit:]), rcpt[limit:]
    assert data.startswith("354") and queued.startswith("250") and bye.startswith("221")
    sqlite_desk.wait_processed(1)
    with sqlite_desk.app.sessions() as s:
        [row] = s.scalars(select(RawMessage)).all()
        assert len(row.envelope_to) == limit


def test_overlong_lines(sqlite_desk: Desk) -> None:
    client = RawClient(sqlite_desk.port)
    try:
        assert client.replies(1)[0].startswith("220")
        client.send(b"EHLO long\r\n")
        client.replies(1)
        client.send(b"MAIL FROM:<" + b"a" * 20_000 + b"@example.org>\r\n")
        assert client.replies(1)[0].startswith("500"), "command line too long"
        client.send(b"NOOP\r\n")
        assert client.replies(1)[0].startswith("250"), "and the session goes on"
    finally:
        client.close()
    # A header line of 100 KB inside the size limit is mail like any other.
    long_header = b"X-Long: " + b"z" * 100_000 + b"\r\n"
    sqlite_desk.send(
        b"From: long@example.org\r\nSubject: long line\r\n" + long_header + b"\r\nbody\r\n"
    )
    # Past the size limit (1 MB here), even as one single line: refused for good (552 for a
    # size the client announced; a line longer than the limit ends as 500 "line too long").
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        sqlite_desk.send(b"Subject: huge\r\nX-Huge: " + b"h" * 1_500_000 + b"\r\n\r\nbody\r\n")
    assert refused.value.smtp_code == 552
    client = RawClient(sqlite_desk.port)
    try:
        client.send(b"HELO big\r\nMAIL FROM:<big@example.org>\r\nRCPT TO:<support@example.com>\r\n")
        client.send(b"DATA\r\n")
        assert client.replies(5)[-1].startswith("354")
        client.send(b"Subject: huge\r\nX-Huge: " + b"h" * 1_500_000 + b"\r\n\r\nbody\r\n.\r\n")
        assert client.replies(1)[0][:3] in ("500", "552")
        client.send(b"NOOP\r\n")
        assert client.replies(1)[0].startswith("250")
    finally:
        client.close()
    [ticket] = sqlite_desk.wait_tickets(1)
    assert ticket["subject"] == "long line"


RELAY_ATTEMPTS = [
    "victim@evil.example",
    "support@example.com@evil.example",
    '"support@example.com"@evil.example',
    "support%evil.example@example.com",
    "support@example.com.evil.example",
    "support@evil.example",
    "support@[127.0.0.1]",
    "@evil.example:victim@evil.example",
    "support+x@evil.example",
    "postmaster",
    "",
]


@pytest.mark.parametrize("mail_from", ["outsider@evil.example", "support@example.com", ""])
def test_no_open_relay(sqlite_desk: Desk, mail_from: str) -> None:
    with smtplib.SMTP("127.0.0.1", sqlite_desk.port, timeout=15) as smtp:
        smtp.ehlo("relay.test")
        code, _ = smtp.mail(f"<{mail_from}>")
        assert code == 250
        for rcpt in RELAY_ATTEMPTS:
            code, answer = smtp.rcpt(f"<{rcpt}>")
            assert code >= 500, (rcpt, code, answer)
        for rcpt in ("support@example.com", "HELPDESK@Example.COM", "support+abc123@example.com"):
            code, answer = smtp.rcpt(f"<{rcpt}>")
            assert code == 250, (rcpt, code, answer)
        smtp.rset()
    assert sqlite_desk.raw_statuses() == []


def test_many_concurrent_connections_are_bounded(sqlite_desk: Desk) -> None:
    limit = smtp_listener.MAX_CONNECTIONS
    clients = [RawClient(sqlite_desk.port) for _ in range(limit + 30)]
    try:
        greetings = [c.replies(1)[0] for c in clients]
        assert sum(g.startswith("220") for g in greetings) == limit
        assert sum(g.startswith("421") for g in greetings) == 30
        refused = [c for c, g in zip(clients, greetings, strict=True) if g.startswith("421")]
        assert all(c.closed_by_server(5) for c in refused)
    finally:
        for c in clients:
            c.close()
    # Once they are gone the desk serves as before.
    wait_until(lambda: _greets(sqlite_desk.port), 10)
    sqlite_desk.send(mail("After the crowd"))
    sqlite_desk.wait_tickets(1)


def _greets(port: int) -> bool:
    client = RawClient(port)
    try:
        return client.replies(1)[0].startswith("220")
    finally:
        client.close()


# --- the listener's limits, shown with small values --------------------------------------


@contextmanager
def listener(app: App, **limits: Any) -> Iterator[int]:
    """The maildesk SMTP listener in its own event loop, storing into `app`."""
    max_recipients = limits.pop("max_recipients", smtp_listener.MAX_RECIPIENTS)

    def handler_for(loop: asyncio.AbstractEventLoop) -> IngestHandler:
        async def store(raw: bytes, mail_from: str | None, rcpts: list[str]) -> int:
            return await loop.run_in_executor(
                None,
                lambda: inbox.store_raw(
                    app, raw, origin="smtp", envelope_from=mail_from, envelope_to=rcpts
                ),
            )

        return IngestHandler(
            store, accept=lambda: frozenset(app.config.smtp.accept), max_recipients=max_recipients
        )

    with listener_thread(handler_for, **limits) as port:
        yield port


def test_listener_defaults() -> None:
    assert smtp_listener.MAX_RECIPIENTS == 100  # RFC 5321 4.5.3.1.8: at least 100
    assert smtp_listener.TIMEOUT == 300.0  # RFC 5321 4.5.3.2: 5 minutes per command
    assert smtp_listener.MAX_CONNECTIONS == 100


def test_silent_client_is_disconnected_after_the_timeout(sqlite_app: App) -> None:
    with listener(sqlite_app, timeout=1.0) as port:
        client = RawClient(port)
        try:
            assert client.replies(1)[0].startswith("220")
            started = time.monotonic()
            assert client.closed_by_server(10), "a silent client must be cut off"
            assert time.monotonic() - started < 5
        finally:
            client.close()


def test_slow_trickle_in_data_is_cut_off(sqlite_app: App) -> None:
    with listener(sqlite_app, timeout=1.0) as port:
        client = RawClient(port)
        try:
            client.send(b"HELO slow\r\nMAIL FROM:<slow@example.org>\r\n")
            client.send(b"RCPT TO:<support@example.com>\r\nDATA\r\n")
            assert client.replies(5)[-1].startswith("354")
            started = time.monotonic()
            cut = False
            while time.monotonic() - started < 10:  # one byte every 0.2 s, never a full line
                try:
                    client.send(b"x")
                except OSError:
                    cut = True
                    break
                if client.closed_by_server(0.2):
                    cut = True
                    break
            assert cut and time.monotonic() - started < 6
        finally:
            client.close()
    with sqlite_app.sessions() as s:
        assert s.scalars(select(RawMessage)).all() == [], "nothing half-stored"


def test_connection_limit_refuses_then_recovers(sqlite_app: App) -> None:
    with listener(sqlite_app, max_connections=3) as port:
        held = [RawClient(port) for _ in range(3)]
        try:
            assert all(c.replies(1)[0].startswith("220") for c in held)
            extra = RawClient(port)
            try:
                assert extra.replies(1)[0].startswith("421 4.7.0")
                assert extra.closed_by_server(5)
            finally:
                extra.close()
            held.pop().close()
            wait_until(lambda: _greets(port), 10)
        finally:
            for c in held:
                c.close()


def test_recipient_limit_is_per_message(sqlite_app: App) -> None:
    with listener(sqlite_app, max_recipients=2) as port, smtplib.SMTP("127.0.0.1", port) as smtp:
        refused = smtp.sendmail(
            "a@example.org",
            ["support@example.com", "helpdesk@example.com", "support+t@example.com"],
            b"Subject: three\r\n\r\nbody\r\n",
        )
        assert (
            list(refused) == ["support+t@example.com"]
            and refused["support+t@example.com"][0] == 452
        )
        smtp.sendmail("a@example.org", ["support+t@example.com"], b"Subject: later\r\n\r\nbody\r\n")
    with sqlite_app.sessions() as s:
        rows = s.scalars(select(RawMessage).order_by(RawMessage.id)).all()
        assert [len(r.envelope_to) for r in rows] == [2, 1]


def test_ticket_message_from_hostile_mail_is_readable(app: App) -> None:
    """A message parsed from hostile bytes still reads back through the store as text."""
    raw = (
        b"From: \xff\xfe <odd@example.org>\r\nTo: support@example.com\r\n"
        b"Subject: =?utf-16?b?//5IAGkA?= \xed\xa0\x80 surrogate bytes\r\n"
        b"\r\n\xed\xa0\x80\x00 body\r\n"
    )
    assert process(app, raw).status == "created"
    with app.sessions() as s:
        [m] = s.scalars(select(Message).where(Message.direction == "in")).all()
        assert "\x00" not in m.body_text and "body" in m.body_text
        m.subject.encode("utf-8")  # no lone surrogates
        m.body_text.encode("utf-8")
