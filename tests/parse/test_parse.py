"""maildesk.parse.parser: raw RFC 5322 bytes in, a ParsedMessage out, whatever the input."""

from __future__ import annotations

import base64
import email
import quopri
import sysconfig
from email.message import EmailMessage
from pathlib import Path

import pytest

from maildesk.errors import NotMail
from maildesk.parse import (
    html_to_text,
    looks_like_mail,
    minted_message_id,
    parse_message,
    sanitise_filename,
    summarise,
)


def raw_mail(*headers: bytes, body: bytes = b"Hello desk.\r\n") -> bytes:
    """Literal message bytes: the given header lines (plus a From if none), a blank line, body."""
    lines = list(headers)
    if not any(h.lower().startswith(b"from:") for h in lines):
        lines.insert(0, b"From: Carol <carol@client.example.org>")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def b64_word(charset: str, text: str) -> bytes:
    encoded = base64.b64encode(text.encode(charset)).decode("ascii")
    return f"=?{charset}?B?{encoded}?=".encode("ascii")


def with_attachment(filename: str, data: bytes, maintype: str, subtype: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "carol@client.example.org"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Logs attached"
    msg["Message-ID"] = "<att@client.example.org>"
    msg.set_content("See the attached file.")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


# --- subjects and other headers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        pytest.param(b"=?utf-8?q?Dr=C3=BCcker_kaputt?=", "Drücker kaputt", id="utf8-q"),
        pytest.param(b"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=", "Grüße", id="utf8-q-upper"),
        pytest.param(b64_word("utf-8", "Принтер не печатает"), "Принтер не печатает", id="utf8-b"),
        pytest.param(b"=?iso-8859-1?q?Caf=E9_ferm=E9?=", "Café fermé", id="latin1-q"),
        pytest.param(b64_word("iso-8859-1", "Bürodrucker"), "Bürodrucker", id="latin1-b"),
        pytest.param(
            b"Re: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Berlin", "Re: Grüße aus Berlin", id="mixed"
        ),
        pytest.param(
            b"=?utf-8?q?Drucker?= =?utf-8?q?_im_2=2E_Stock?=",
            "Drucker im 2. Stock",
            id="adjacent-words-joined",
        ),
        pytest.param(
            b"=?utf-8?q?Drucker?=\r\n =?iso-8859-1?q?_f=FCr_Jan?=",
            "Drucker für Jan",
            id="folded-two-charsets",
        ),
        pytest.param(b"Plain   ASCII\r\n\tsubject", "Plain ASCII subject", id="folded-plain"),
    ],
)
def test_encoded_word_subjects_are_decoded(subject: bytes, expected: str) -> None:
    parsed = parse_message(raw_mail(b"Subject: " + subject))
    assert parsed.subject == expected


def test_encoded_word_display_name_in_from() -> None:
    parsed = parse_message(raw_mail(b"From: =?utf-8?q?J=C3=BCrgen_Wei=C3=9F?= <JW@Example.ORG>"))
    assert parsed.from_name == "Jürgen Weiß"
    assert parsed.from_addr == "jw@example.org"


@pytest.mark.parametrize(
    ("encoding", "text"),
    [("utf-8", "Drücker im Büro kaputt – €"), ("cp1252", "Drücker im Büro kaputt – €")],
)
def test_raw_8bit_subject_is_decoded(encoding: str, text: str) -> None:
    parsed = parse_message(raw_mail(b"Subject: " + text.encode(encoding)))
    assert parsed.subject == text
    assert "\ufffd" not in parsed.subject


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_raw_8bit_from_display_name_keeps_address(encoding: str) -> None:
    header = "From: Jürgen Weiß <juergen@client.example.org>".encode(encoding)
    parsed = parse_message(raw_mail(header, b"Subject: hi"))
    assert parsed.from_name == "Jürgen Weiß"
    assert parsed.from_addr == "juergen@client.example.org"


def test_headers_keep_order_and_lookup_is_case_insensitive() -> None:
    parsed = parse_message(
        raw_mail(b"Subject: =?utf-8?q?h=C3=A9?=", b"X-Custom: one", b"X-Custom: two")
    )
    assert parsed.header("SUBJECT") == "hé"
    assert parsed.header("x-custom") == "one"
    assert [v for k, v in parsed.headers if k == "x-custom"] == ["one", "two"]
    assert parsed.header("X-Missing") is None


def test_recipients_are_lower_cased_and_deduplicated() -> None:
    parsed = parse_message(
        raw_mail(
            b"To: Support <Support@Example.com>, helpdesk@example.com",
            b"Cc: Dave <dave@client.example.org>, SUPPORT@example.com, dave@client.example.org",
            b"Reply-To: carol.private@client.example.org",
        )
    )
    assert parsed.to == ("support@example.com", "helpdesk@example.com")
    assert parsed.cc == ("dave@client.example.org", "support@example.com")
    assert parsed.reply_to == ("carol.private@client.example.org",)


def test_encoded_display_name_with_comma_keeps_the_real_address() -> None:
    # Outlook writes "Last, First"; with non-ASCII letters that becomes one encoded-word.
    parsed = parse_message(
        raw_mail(b"From: =?utf-8?q?M=C3=BCller=2C_J=C3=BCrgen?= <jm@client.example.org>")
    )
    assert parsed.from_addr == "jm@client.example.org"
    assert parsed.from_name == "Müller, Jürgen"


def test_address_inside_an_encoded_word_is_not_taken_as_the_sender() -> None:
    # RFC 2047 section 5: an encoded-word is display text, never an address.
    parsed = parse_message(
        raw_mail(b"From: =?utf-8?q?alice=40example=2Ecom?= <mallory@attacker.test>")
    )
    assert parsed.from_addr == "mallory@attacker.test"


def test_address_inside_an_encoded_word_is_not_added_to_cc() -> None:
    parsed = parse_message(
        raw_mail(b"Cc: =?utf-8?q?Team_<alice@example.com>?= <mallory@attacker.test>")
    )
    assert parsed.cc == ("mallory@attacker.test",)


@pytest.mark.parametrize(
    ("value", "addr", "name"),
    [
        # An encoded-word is display text, never an address (RFC 2047 section 5), and the
        # angle address is the address, whatever the phrase before it looks like.
        (
            b"=?utf-8?q?agent=40example.com?= <attacker@evil.example>",
            "attacker@evil.example",
            "agent@example.com",
        ),
        (
            b"agent@example.com <attacker@evil.example>",
            "attacker@evil.example",
            "agent@example.com",
        ),
        (
            b"attacker@evil.example <agent@example.com>",
            "agent@example.com",
            "attacker@evil.example",
        ),
        (
            b'"agent@example.com" <attacker@evil.example>',
            "attacker@evil.example",
            "agent@example.com",
        ),
        (
            b"=?utf-8?q?a=40b.example_=3Cagent=40example.com=3E?= <attacker@evil.example>",
            "attacker@evil.example",
            "a@b.example <agent@example.com>",
        ),
        # An encoded-word alone, even one that decodes to an address, names no address.
        (b"=?utf-8?q?a=40b.example_=3Cagent=40example.com=3E?=", "", ""),
        (b"=?utf-8?b?YWdlbnRAZXhhbXBsZS5jb20=?=", "", ""),
        # Inside an address it stays the literal atom the MTA routes on.
        (b"=?utf-8?q?agent?=@example.com", "=?utf-8?q?agent?=@example.com", ""),
        (b"<=?utf-8?q?agent?=@example.com>", "=?utf-8?q?agent?=@example.com", ""),
        (b"agent@=?utf-8?q?example.com?=", "agent@=?utf-8?q?example.com?=", ""),
        (b"=?utf-8?q?x?= agent@example.com", "", ""),
        # Legitimate forms.
        (b"Alice Admin <Alice@Example.COM>", "alice@example.com", "Alice Admin"),
        (b"<alice@example.com>", "alice@example.com", ""),
        (b"alice@example.com", "alice@example.com", ""),
        (b"alice@example.com (Alice Admin)", "alice@example.com", "Alice Admin"),
        (b'"Admin, Alice (IT)" <alice@example.com>', "alice@example.com", "Admin, Alice (IT)"),
        (b'"Alice \\"the admin\\"" <alice@example.com>', "alice@example.com", 'Alice "the admin"'),
        (
            b"=?utf-8?q?M=C3=BCller=2C_J=C3=BCrgen?= <jm@client.example.org>",
            "jm@client.example.org",
            "M\u00fcller, J\u00fcrgen",
        ),
        (
            "J\u00fcrgen Wei\u00df <jw@client.example.org>".encode(),
            "jw@client.example.org",
            "J\u00fcrgen Wei\u00df",
        ),
        (
            b"=?utf-8?q?J=C3=BCrgen?= =?utf-8?q?_Wei=C3=9F?= <jw@client.example.org>",
            "jw@client.example.org",
            "J\u00fcrgen Wei\u00df",
        ),
        (b"J. R. Smith <jrs@client.example.org>", "jrs@client.example.org", "J. R. Smith"),
        (b"Alice <alice@example.com> (IT)", "alice@example.com", "Alice"),
        (b"<@relay.example.net:alice@example.com>", "alice@example.com", ""),
        (b"IT team: alice@example.com, Bob <bob@example.com>;", "alice@example.com", ""),
        (b"undisclosed-recipients:;, carol@client.example.org", "carol@client.example.org", ""),
        (b"Alice <alice@example.com", "alice@example.com", "Alice"),
        (b"Alice <alice@[192.0.2.1]>", "alice@[192.0.2.1]", "Alice"),
        # Not an address at all.
        (b"Alice", "", ""),
        (b"Alice <>", "", ""),
        (b"<alice@example.com@evil.example>", "", ""),
        (b"a <b <alice@example.com>>", "", ""),
    ],
)
def test_from_is_read_as_the_mta_reads_it(value: bytes, addr: str, name: str) -> None:
    parsed = parse_message(raw_mail(b"From: " + value, b"Subject: hi"))
    assert (parsed.from_addr, parsed.from_name) == (addr, name)


def test_recipient_lists_take_the_angle_address_of_each_mailbox() -> None:
    parsed = parse_message(
        raw_mail(
            b'To: agent@example.com <attacker@evil.example>, "Support, IT" <support@example.com>',
            b"Cc: Team: =?utf-8?q?x=40y.example?= <dave@client.example.org>, "
            b"erin@client.example.org;",
        )
    )
    assert parsed.to == ("attacker@evil.example", "support@example.com")
    assert parsed.cc == ("dave@client.example.org", "erin@client.example.org")


# --- where the header block ends -----------------------------------------------------------

FORGED = (
    b"From: alice@example.com",
    b"Message-ID: <forged@attacker.test>",
    b"In-Reply-To: <ticket-1@example.com>",
    b"Auto-Submitted: auto-replied",
    b"Authentication-Results: mx.example.com; dmarc=pass header.from=example.com",
)


@pytest.mark.parametrize(
    "breaker",
    [
        b"This line has no colon",
        b"X-Spaced Name: a field name may not hold a space",
        b"\x00Nul: control characters are not field names",
        b"<html>",
    ],
)
def test_a_line_that_is_no_header_ends_the_header_block(breaker: bytes) -> None:
    # Python's email package (and an MTA) reads the rest as body: so must every field.
    raw = raw_mail(b"From: Carol <carol@client.example.org>", b"Subject: hi", breaker, *FORGED)
    parsed = parse_message(raw)
    assert parsed.from_addr == "carol@client.example.org"
    assert parsed.message_id_minted
    assert parsed.in_reply_to == ()
    names = [name for name, _ in parsed.headers]
    assert names == [name for name, _ in parsed.raw_headers] == ["from", "subject"]
    assert parsed.header("auto-submitted") is None
    assert summarise(raw).from_addr == "carol@client.example.org"


def test_first_field_after_a_breaker_is_not_the_sender() -> None:
    parsed = parse_message(
        b"Subject: hi\r\nno colon here\r\n" + b"\r\n".join(FORGED) + b"\r\n\r\nx"
    )
    assert parsed.from_addr == ""
    assert parsed.headers == (("subject", "hi"),)


def test_header_fields_are_split_where_python_splits_them() -> None:
    # A bare CR ends a line for the email package; a space-only line continues a field.
    raw = (
        b"From: carol@client.example.org\rAuto-Submitted: auto-replied\r\n"
        b"Subject: a\r\n \r\n b\r\n\r\nbody"
    )
    parsed = parse_message(raw)
    assert parsed.header("auto-submitted") == "auto-replied"
    assert parsed.subject == "a b"
    assert parsed.body_text == "body"


def test_a_misplaced_mbox_line_is_not_a_field() -> None:
    raw = (
        b"Subject: hi\r\nFrom alice@example.com Tue Dec  1 20:00:00 2026\r\n"
        b"To: support@example.com\r\n\r\nx"
    )
    parsed = parse_message(raw)
    assert [name for name, _ in parsed.headers] == ["subject", "to"]
    assert parsed.from_addr == ""


def test_raw_headers_keep_encoded_words_and_order() -> None:
    parsed = parse_message(
        raw_mail(
            b"Received: from a by mx.example.com; Tue, 1 Dec 2026 20:00:00 +0000",
            b"Authentication-Results: mx.example.com; spf=fail\r\n\t(sender =?utf-8?q?x=29?=)"
            b" smtp.mailfrom=evil.example",
            b"Subject: =?utf-8?q?h=C3=A9?=",
        )
    )
    assert parsed.raw_headers[1:] == (
        ("received", "from a by mx.example.com; Tue, 1 Dec 2026 20:00:00 +0000"),
        (
            "authentication-results",
            "mx.example.com; spf=fail\t(sender =?utf-8?q?x=29?=) smtp.mailfrom=evil.example",
        ),
        ("subject", "=?utf-8?q?h=C3=A9?="),
    )
    assert parsed.header("subject") == "hé"


# --- Message-ID --------------------------------------------------------------------------


def test_message_id_is_kept_when_present() -> None:
    parsed = parse_message(raw_mail(b"Message-ID:  <abc.123@client.example.org>  "))
    assert parsed.message_id == "<abc.123@client.example.org>"
    assert parsed.message_id_minted is False


def test_message_id_without_angle_brackets_is_normalised() -> None:
    parsed = parse_message(raw_mail(b"Message-ID: abc.123@client.example.org"))
    assert parsed.message_id == "<abc.123@client.example.org>"
    assert parsed.message_id_minted is False


@pytest.mark.parametrize(
    "header", [None, b"Message-ID:", b"Message-ID: not an id"], ids=["absent", "empty", "junk"]
)
def test_missing_message_id_is_minted_from_the_bytes(header: bytes | None) -> None:
    raw = raw_mail(*([header] if header else []), b"Subject: no id")
    parsed = parse_message(raw)
    assert parsed.message_id_minted is True
    assert parsed.message_id == minted_message_id(raw)
    assert parsed.message_id.startswith("<") and parsed.message_id.endswith(">")
    assert "@" in parsed.message_id


def test_minted_message_id_is_deterministic() -> None:
    raw = raw_mail(b"Subject: no id")
    assert parse_message(raw).message_id == parse_message(bytes(raw)).message_id


def test_minted_message_id_differs_for_different_bytes() -> None:
    first = parse_message(raw_mail(b"Subject: no id", body=b"one\r\n"))
    second = parse_message(raw_mail(b"Subject: no id", body=b"two\r\n"))
    assert first.message_id != second.message_id


# --- threading headers -------------------------------------------------------------------


def test_thread_ids_are_in_reply_to_then_references_nearest_first() -> None:
    parsed = parse_message(
        raw_mail(
            b"In-Reply-To: <p@desk.example.com> (Alice's message of Monday)",
            b"References: <r1@client.example.org>\r\n <r2@desk.example.com>\r\n"
            b" <p@desk.example.com>",
        )
    )
    assert parsed.in_reply_to == ("<p@desk.example.com>",)
    assert parsed.references == (
        "<r1@client.example.org>",
        "<r2@desk.example.com>",
        "<p@desk.example.com>",
    )
    assert parsed.thread_ids == (
        "<p@desk.example.com>",
        "<r2@desk.example.com>",
        "<r1@client.example.org>",
    )


def test_thread_ids_empty_without_threading_headers() -> None:
    parsed = parse_message(raw_mail(b"Subject: fresh"))
    assert parsed.in_reply_to == ()
    assert parsed.references == ()
    assert parsed.thread_ids == ()


# --- bodies ------------------------------------------------------------------------------


def test_html_only_body_is_converted_to_text() -> None:
    html = (
        b"<html><head><title>T</title><style>p {color: red}</style></head><body>"
        b"<p>The printer on floor 2</p><script>alert('x')</script>"
        b"<div>is jammed<br>again</div></body></html>"
    )
    parsed = parse_message(
        raw_mail(b"Subject: html", b"Content-Type: text/html; charset=utf-8", body=html)
    )
    assert parsed.body_html.startswith("<html>")
    lines = parsed.body_text.splitlines()
    assert "The printer on floor 2" in lines
    assert "is jammed" in lines
    assert "again" in lines
    for leftover in ("<", "alert", "color: red"):
        assert leftover not in parsed.body_text


def test_html_inline_markup_stays_on_one_line() -> None:
    text = html_to_text("<p>Hello <b>Alice</b>, printer <span>3</span> is <i>down</i>.</p>")
    assert text == "Hello Alice, printer 3 is down."


def test_multipart_alternative_keeps_both_bodies() -> None:
    msg = EmailMessage()
    msg["From"] = "carol@client.example.org"
    msg["Subject"] = "alt"
    msg.set_content("The plain version.\n")
    msg.add_alternative("<p>The <b>HTML</b> version.</p>\n", subtype="html")
    parsed = parse_message(msg.as_bytes())
    assert parsed.content_type == "multipart/alternative"
    assert parsed.body_text == "The plain version."
    assert "<b>HTML</b>" in parsed.body_html
    assert parsed.attachments == ()


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("iso-8859-1", "Grüße aus Köln, café fermé"),
        ("koi8-r", "Принтер не печатает"),
        ("utf-8", "日本語 – Grüße – Принтер"),
        ("windows-1251", "Принтер не печатает"),
    ],
)
@pytest.mark.parametrize("cte", ["8bit", "quoted-printable", "base64"])
def test_body_charsets_are_decoded(charset: str, text: str, cte: str) -> None:
    data = text.encode(charset) + b"\r\n"
    if cte == "quoted-printable":
        data = quopri.encodestring(data)
    elif cte == "base64":
        data = base64.encodebytes(data)
    raw = raw_mail(
        b"Subject: charset",
        b"MIME-Version: 1.0",
        f"Content-Type: text/plain; charset={charset}".encode(),
        f"Content-Transfer-Encoding: {cte}".encode(),
        body=data,
    )
    assert parse_message(raw).body_text == text


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_8bit_body_without_declared_charset(encoding: str) -> None:
    text = "Der Drucker im Büro druckt nur „Müll“."
    parsed = parse_message(raw_mail(b"Subject: no charset", body=text.encode(encoding)))
    assert parsed.body_text == text


# --- attachments -------------------------------------------------------------------------


def test_binary_attachment_round_trips() -> None:
    data = bytes(range(256)) * 4
    parsed = parse_message(with_attachment("dump.bin", data, "application", "octet-stream"))
    [att] = parsed.attachments
    assert att.filename == "dump.bin"
    assert att.content_type == "application/octet-stream"
    assert att.content == data
    assert att.size == len(data) == 1024
    assert parsed.body_text == "See the attached file."


def test_several_attachments_keep_order_and_types() -> None:
    msg = EmailMessage()
    msg["From"] = "carol@client.example.org"
    msg["Subject"] = "two files"
    msg.set_content("Two files.")
    msg.add_attachment(b"%PDF-1.7 fake", maintype="application", subtype="pdf", filename="a.pdf")
    msg.add_attachment("col1,col2\n1,2\n", subtype="csv", filename="b.csv")
    parsed = parse_message(msg.as_bytes())
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("a.pdf", "application/pdf"),
        ("b.csv", "text/csv"),
    ]
    assert parsed.attachments[0].content == b"%PDF-1.7 fake"
    assert parsed.attachments[1].content == b"col1,col2\n1,2\n"


def test_non_ascii_attachment_name_survives() -> None:
    parsed = parse_message(with_attachment("Bericht für Jürgen.pdf", b"x", "application", "pdf"))
    assert parsed.attachments[0].filename == "Bericht für Jürgen.pdf"


@pytest.mark.parametrize(
    ("hostile", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("C:\\Users\\bob\\report.doc", "report.doc"),
        ("/abs/path/x.txt", "x.txt"),
        ("a\x00b.txt", "a_b.txt"),
        ("bell\x07 and\ttab.txt", "bell_ and_tab.txt"),
        ('what?*"<>|.txt', "what_.txt"),
        ("..", None),
        (".hidden", "hidden"),
    ],
)
def test_hostile_attachment_names_are_sanitised(hostile: str, expected: str | None) -> None:
    parsed = parse_message(with_attachment(hostile, b"payload", "application", "octet-stream"))
    [att] = parsed.attachments
    name = att.filename
    assert name
    assert not any(c in name for c in "/\\\x00\x07\t:")
    assert not name.startswith(".")
    assert name == (expected or "attachment-1.bin")
    assert att.content == b"payload"


def test_very_long_attachment_name_is_cut_keeping_the_extension() -> None:
    parsed = parse_message(with_attachment("x" * 500 + ".pdf", b"%PDF", "application", "pdf"))
    name = parsed.attachments[0].filename
    assert len(name) <= 200
    assert name.endswith(".pdf")
    assert name.startswith("xxxx")


@pytest.mark.parametrize(
    ("name", "content_type", "index", "expected"),
    [
        (None, "application/pdf", 3, "attachment-3.pdf"),
        ("", "image/png", 1, "attachment-1.png"),
        (" . ", "application/x-unknown-thing", 2, "attachment-2.bin"),
        ("report.pdf", "application/pdf", 1, "report.pdf"),
    ],
)
def test_sanitise_filename_fallbacks(
    name: str | None, content_type: str, index: int, expected: str
) -> None:
    assert sanitise_filename(name, content_type, index) == expected


def test_sanitise_filename_cuts_long_names_without_extension() -> None:
    assert sanitise_filename("y" * 300, "application/octet-stream", 1) == "y" * 200


# --- not mail ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \r\n\r\n",
        b"\x00\x01\x02 this is not an email at all \xff\xfe",
        b"hello world, there are no headers here\n",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"Subject without colon\n\nbody",
        b": empty header name\n\nbody",
    ],
)
def test_non_mail_raises_not_mail(raw: bytes) -> None:
    assert looks_like_mail(raw) is False
    with pytest.raises(NotMail):
        parse_message(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@example.org\r\n\r\nbody",
        b"\r\n\r\nSubject: leading blank lines\n\nbody",
        b"From carol@client.example.org Mon Jan  1 00:00:00 2024\nSubject: mbox\n\nbody",
        b"X-Weird_Header.1:value\n\nbody",
    ],
)
def test_looks_like_mail_accepts_header_blocks(raw: bytes) -> None:
    assert looks_like_mail(raw) is True
    assert parse_message(raw).message_id


CORPORA = [
    Path(__file__).resolve().parents[1] / "data" / "realworld",
    Path(__file__).resolve().parents[1] / "data" / "bounces",
    Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data",
]


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for d in CORPORA
        if d.is_dir()
        for p in d.iterdir()
        if p.suffix in (".eml", ".txt") and looks_like_mail(p.read_bytes())
    ),
    ids=lambda p: p.name,
)
def test_fields_are_the_ones_the_email_package_sees(path: Path) -> None:
    raw = path.read_bytes()
    expected = [name.lower() for name in email.message_from_bytes(raw.lstrip(b"\r\n"))]
    assert [name for name, _ in parse_message(raw).raw_headers] == expected[:1000]
