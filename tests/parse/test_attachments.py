"""Forwards and attachments as users see them: transfer-encoded and mbox-munged forwards read
as the messages they are, winmail.dat unpacked beside itself, opaque-signed S/MIME showing
its content, and .eml names made from subjects.

Fixtures: tests/data/realworld/tnef-winmail-outlook.eml and tests/data/attachments/ (origins
in their READMEs); TNEF streams and PKCS#7 structures built here, field by field.
"""

from __future__ import annotations

import base64
import quopri
import struct
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from asn1crypto import algos, cms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maildesk.errors import MessageTooComplex
from maildesk.parse import ParsedMessage, parse_message

DATA = Path(__file__).resolve().parents[1] / "data"
FUZZ = settings(
    max_examples=100, deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def names(parsed: ParsedMessage) -> list[str]:
    return [a.filename for a in parsed.attachments]


def attachment(parsed: ParsedMessage, filename: str) -> tuple[str, bytes]:
    [found] = [a for a in parsed.attachments if a.filename == filename]
    return found.content_type, found.content


def wrapper(part: bytes, boundary: str = "outer") -> bytes:
    """A message with a line of its own text and then the given MIME part."""
    return (
        (
            "From: Carol <carol@client.example.org>\r\nTo: support@example.com\r\n"
            "Subject: Fwd: see below\r\nMessage-ID: <fwd@client.example.org>\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nForwarding this one.\r\n"
            f"--{boundary}\r\n"
        ).encode()
        + part
        + f"\r\n--{boundary}--\r\n".encode()
    )


def forwarded_original() -> bytes:
    """The forwarded message: a folded encoded-word subject, text in UTF-8 and a PDF."""
    return (
        b"From: Dana Field <dana@client.example.org>\r\nTo: it@client.example.org\r\n"
        b"Subject: =?utf-8?q?Drucker_im_2=2E_Stock=3A_Papierstau_seit_gestern=2C_bitte?=\r\n"
        b" =?utf-8?q?_dringend_pr=C3=BCfen_=E2=80=93_B=C3=BCro_2?=\r\n"
        b"Message-ID: <original@client.example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="inner"\r\n\r\n'
        b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        + "Der Drucker für Büro 2 zieht kein Papier mehr ein.\r\n".encode()
        + b"--inner\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="fehlerseite.pdf"\r\n\r\n'
        + base64.encodebytes(b"%PDF-1.4 error page").replace(b"\n", b"\r\n")
        + b"--inner--\r\n"
    )


# --- forwards sent base64 or quoted-printable -------------------------------------------------


@pytest.mark.parametrize("cte", ["base64", "quoted-printable"])
def test_encoded_forward_is_read_as_the_message_it_carries(cte: str) -> None:
    original = forwarded_original()
    encode = base64.encodebytes if cte == "base64" else quopri.encodestring
    encoded = encode(original).replace(b"\r\r\n", b"\r\n")
    part = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: " + cte.encode()
    parsed = parse_message(wrapper(part + b"\r\n\r\n" + encoded))

    assert "Der Drucker für Büro 2 zieht kein Papier mehr ein." in parsed.body_text
    assert "Forwarding this one." in parsed.body_text
    assert "RGVy" not in parsed.body_text and "=C3" not in parsed.body_text
    eml = "Drucker im 2. Stock_ Papierstau seit gestern, bitte dringend prüfen – Büro 2.eml"
    assert names(parsed) == [eml, "fehlerseite.pdf"]
    ctype, content = attachment(parsed, eml)
    assert ctype == "message/rfc822"
    assert b"Message-ID: <original@client.example.org>" in content
    assert b"Der Drucker f" in content and b"RGVy" not in content
    assert attachment(parsed, "fehlerseite.pdf") == ("application/pdf", b"%PDF-1.4 error page")


def test_base64_label_on_a_forward_that_is_not_encoded_is_ignored() -> None:
    part = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    parsed = parse_message(wrapper(part + forwarded_original()))
    assert "zieht kein Papier mehr ein" in parsed.body_text
    assert "fehlerseite.pdf" in names(parsed)


def test_encoded_forward_is_held_to_the_part_limit() -> None:
    inner = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n" + b"".join(
        b"--i\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n for n in range(30)
    )
    part = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    raw = wrapper(part + base64.encodebytes(inner + b"--i--\r\n"))
    assert len(parse_message(raw, max_parts=40).body_text.splitlines()) == 31
    with pytest.raises(
        MessageTooComplex, match=r"more than 20 MIME parts \(maildesk reads at most 20\)"
    ):
        parse_message(raw, max_parts=20)


def test_encoded_forwards_are_held_to_the_depth_limit() -> None:
    inner = b"From: a@example.org\r\nSubject: innermost\r\n\r\ninnermost text\r\n"
    for _ in range(6):
        inner = (
            b"From: a@example.org\r\nContent-Type: message/rfc822\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(inner)
        )
    assert "innermost text" in parse_message(inner, max_depth=8).body_text
    with pytest.raises(
        MessageTooComplex, match=r"deeper than 5 levels \(maildesk reads at most 5\)"
    ):
        parse_message(inner, max_depth=5)


# --- forwards opened by an mbox From line ------------------------------------------------------


@pytest.mark.parametrize(
    "first_line",
    [
        b">From dana@client.example.org Mon Mar 20 09:14:02 2023\r\n",
        b">>From dana@client.example.org Mon Mar 20 09:14:02 2023\r\n",
        b"From dana@client.example.org Mon Mar 20 09:14:02 2023\r\n",
    ],
    ids=["munged", "munged-twice", "envelope"],
)
@pytest.mark.parametrize("cte", ["7bit", "base64"])
def test_forward_opened_by_an_mbox_from_line_keeps_its_headers(first_line: bytes, cte: str) -> None:
    inner = first_line + forwarded_original()
    if cte == "base64":
        inner = base64.encodebytes(inner)
    part = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: " + cte.encode()
    parsed = parse_message(wrapper(part + b"\r\n\r\n" + inner))

    assert "zieht kein Papier mehr ein" in parsed.body_text
    assert "Message-ID:" not in parsed.body_text and "From dana" not in parsed.body_text
    eml = next(n for n in names(parsed) if n.endswith(".eml"))
    assert eml.startswith("Drucker im 2. Stock_ Papierstau")
    assert attachment(parsed, eml)[1].startswith(b"From: Dana Field")
    assert "fehlerseite.pdf" in names(parsed)


# --- .eml names from subjects ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: build 1/2 failed", "Re_ build 1_2 failed.eml"),
        ("share \\\\fs01\\public is full", "share __fs01_public is full.eml"),
        ("../../etc/passwd", "_.._etc_passwd.eml"),
    ],
)
def test_eml_name_from_a_subject_keeps_all_of_it(subject: str, expected: str) -> None:
    inner = f"From: a@example.org\r\nSubject: {subject}\r\n\r\ntext\r\n".encode()
    parsed = parse_message(wrapper(b"Content-Type: message/rfc822\r\n\r\n" + inner))
    assert names(parsed) == [expected]


def test_declared_eml_name_is_still_a_file_name() -> None:
    part = b'Content-Type: message/rfc822; name="C:\\\\mail\\\\saved.eml"\r\n\r\n'
    parsed = parse_message(wrapper(part + b"From: a@example.org\r\nSubject: a/b\r\n\r\nx\r\n"))
    assert names(parsed) == ["saved.eml"]


# --- TNEF (winmail.dat) ---------------------------------------------------------------------


def tnef_object(level: int, attribute: int, kind: int, data: bytes) -> bytes:
    """One TNEF object (MS-OXTNEF 2.1.3): level, attribute, type, length, data, checksum."""
    return (
        struct.pack("<BHHI", level, attribute, kind, len(data))
        + data
        + struct.pack("<H", sum(data) & 0xFFFF)
    )


def mapi(*properties: bytes, count: int | None = None) -> bytes:
    """A MAPI property block: its count, then the properties."""
    return struct.pack("<I", len(properties) if count is None else count) + b"".join(properties)


def mapi_value(kind: int, name: int, value: bytes) -> bytes:
    """A property of a variable-length type (string or binary): one value, padded to 4."""
    return struct.pack("<HHII", kind, name, 1, len(value)) + value + b"\x00" * (-len(value) % 4)


def tnef_stream(*objects: bytes) -> bytes:
    header = b"\x78\x9f\x3e\x22" + struct.pack("<H", 0x0B2C)
    version = tnef_object(1, 0x9006, 8, struct.pack("<I", 0x00010000))
    codepage = tnef_object(1, 0x9007, 6, struct.pack("<II", 1252, 0))
    return header + version + codepage + b"".join(objects)


def packed_file(title: bytes, data: bytes, *properties: bytes) -> bytes:
    """The objects Outlook writes for one attached file."""
    return (
        tnef_object(2, 0x9002, 6, b"\xff\xff\xff\xff" + b"\x00" * 10)
        + tnef_object(2, 0x8010, 1, title + b"\x00")
        + tnef_object(2, 0x800F, 6, data)
        + tnef_object(2, 0x9005, 6, mapi(*properties))
    )


REPORT = packed_file(
    b"BERICH~1.PDF",
    b"%PDF-1.7 report",
    mapi_value(0x001E, 0x3707, "Bericht für März.pdf".encode("cp1252") + b"\x00"),
    mapi_value(0x001E, 0x370E, b"application/pdf\x00"),
)
SCREENSHOT = packed_file(b"screen.png", b"\x89PNG fake")


def with_winmail(stream: bytes, text: str | None = "See the attached notes.") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Lee Grant <lee.grant@northwind.example>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Printer on floor 3"
    if text is not None:
        msg.set_content(text)
        msg.add_attachment(
            stream, maintype="application", subtype="ms-tnef", filename="winmail.dat"
        )
    else:
        msg.set_content(
            stream,
            maintype="application",
            subtype="ms-tnef",
            disposition="attachment",
            filename="winmail.dat",
        )
    return msg.as_bytes()


def test_outlook_winmail_dat_is_unpacked_and_kept() -> None:
    raw = (DATA / "realworld" / "tnef-winmail-outlook.eml").read_bytes()
    parsed = parse_message(raw)
    assert names(parsed) == ["winmail.dat", "printer-notes.txt"]
    ctype, winmail = attachment(parsed, "winmail.dat")
    assert ctype == "application/ms-tnef" and winmail.startswith(b"\x78\x9f\x3e\x22")
    assert attachment(parsed, "printer-notes.txt") == (
        "text/plain",
        b"Printer serial: CN-0X8H2-12345\r\nToner: 0 %\r\n",
    )
    assert parsed.body_text.startswith("The printer on floor 3 shows error 59.4 again.")


def test_packed_files_get_their_long_names_and_types() -> None:
    stream = tnef_stream(REPORT, SCREENSHOT)
    parsed = parse_message(with_winmail(stream))
    assert names(parsed) == ["winmail.dat", "Bericht für März.pdf", "screen.png"]
    assert attachment(parsed, "winmail.dat")[1] == stream
    assert attachment(parsed, "Bericht für März.pdf") == ("application/pdf", b"%PDF-1.7 report")
    assert attachment(parsed, "screen.png") == ("image/png", b"\x89PNG fake")
    assert parsed.body_text == "See the attached notes."  # the MIME text, not the TNEF body


@pytest.mark.parametrize(
    ("body", "text", "html"),
    [
        (
            tnef_object(1, 0x800C, 2, "Der Toner ist leer.".encode("cp1252")),
            "Der Toner ist leer.",
            "",
        ),
        (
            tnef_object(1, 0x9003, 6, mapi(mapi_value(0x001E, 0x1000, b"MAPI body text\x00"))),
            "MAPI body text",
            "",
        ),
        (
            tnef_object(1, 0x9003, 6, mapi(mapi_value(0x0102, 0x1013, b"<p>HTML <b>body</b></p>"))),
            "HTML body",
            "<p>HTML <b>body</b></p>",
        ),
    ],
    ids=["attbody", "mapi-body", "mapi-html"],
)
def test_tnef_body_is_the_text_of_a_message_without_other(
    body: bytes, text: str, html: str
) -> None:
    parsed = parse_message(with_winmail(tnef_stream(body, SCREENSHOT), text=None))
    assert parsed.body_text == text
    assert parsed.body_html == html
    assert names(parsed) == ["winmail.dat", "screen.png"]


def test_recipients_table_does_not_stop_the_files_being_read() -> None:
    recipients = tnef_object(1, 0x9004, 6, struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF))
    parsed = parse_message(with_winmail(tnef_stream(recipients, SCREENSHOT)))
    assert names(parsed) == ["winmail.dat", "screen.png"]


def embedded_item(inner: bytes) -> bytes:
    """An attached Outlook item: a TNEF stream inside an attachment's data object."""
    signature = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
    return packed_file(b"item", b"", mapi_value(0x000D, 0x3701, signature + inner))


HUGE = 0xFFFFFFFF
BROKEN_STREAMS = {
    "not-tnef": b"PK\x03\x04 not a TNEF stream at all",
    "cut-short": tnef_stream(REPORT)[:40],
    "property-count": tnef_stream(tnef_object(1, 0x9003, 6, mapi(count=HUGE))),
    "properties-past-the-end": tnef_stream(
        tnef_object(1, 0x9003, 6, mapi(mapi_value(0x0102, 0x1013, b"x" * 64), count=16))
    ),
    "multi-valued-count": tnef_stream(
        tnef_object(1, 0x9003, 6, struct.pack("<IHHI", 1, 0x1002, 0x0001, 50_000_000))
    ),
    "attachment-count": tnef_stream(
        tnef_object(2, 0x9002, 6, b"\x00" * 14) + tnef_object(2, 0x9005, 6, mapi(count=HUGE))
    ),
    "embedded-count": tnef_stream(
        embedded_item(tnef_stream(tnef_object(1, 0x9003, 6, mapi(count=HUGE))))
    ),
    "embedded-recipients": tnef_stream(
        embedded_item(tnef_stream(tnef_object(1, 0x9004, 6, struct.pack("<II", 1, HUGE))))
    ),
    "objects": tnef_stream(*[tnef_object(1, 0x8004, 1, b"s\x00")] * 6000),
}


@pytest.mark.parametrize("name", list(BROKEN_STREAMS))
def test_broken_tnef_is_kept_as_it_came_in_bounded_time(name: str) -> None:
    stream = BROKEN_STREAMS[name]
    started = time.monotonic()
    parsed = parse_message(with_winmail(stream))
    assert time.monotonic() - started < 5
    assert attachment(parsed, "winmail.dat") == ("application/ms-tnef", stream)
    assert len(parsed.attachments) <= 2
    assert parsed.body_text == "See the attached notes."


@FUZZ
@given(st.data())
def test_mutated_tnef_never_breaks_the_message(data: st.DataObject) -> None:
    stream = bytearray(tnef_stream(REPORT, embedded_item(tnef_stream(SCREENSHOT)), SCREENSHOT))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(stream) - 1))
        stream[at] = data.draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, stream[at] ^ 0x10]))
    cut = data.draw(st.integers(6, len(stream)))
    parsed = parse_message(with_winmail(bytes(stream[:cut])))
    assert attachment(parsed, "winmail.dat")[1] == bytes(stream[:cut])
    assert parsed.body_text == "See the attached notes."


# --- opaque-signed S/MIME -------------------------------------------------------------------


def test_opaque_signed_outlook_mail_shows_its_content() -> None:
    raw = (DATA / "attachments" / "smime-opaque-signed-outlook.eml").read_bytes()
    parsed = parse_message(raw)
    assert parsed.body_text == (
        "Since this morning the VPN client says my certificate has expired. The log is "
        "attached.\n\nGrüße, Anna"
    )
    assert names(parsed) == ["smime.p7m", "vpn-client.log"]
    ctype, p7m = attachment(parsed, "smime.p7m")
    assert ctype == "application/pkcs7-mime"
    assert p7m.startswith(b"\x30\x82") and b"\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02" in p7m[:20]
    assert attachment(parsed, "vpn-client.log") == (
        "text/plain",
        b"2023-11-20 08:12:01 TLS handshake failed: certificate expired\r\n",
    )


def test_encrypted_smime_stays_an_attachment_and_says_nothing() -> None:
    raw = (DATA / "attachments" / "smime-enveloped-outlook.eml").read_bytes()
    parsed = parse_message(raw)
    assert parsed.body_text == "" and parsed.body_html == ""
    assert names(parsed) == ["smime.p7m"]


def signed_data(content: bytes, content_type: str = "signed_data") -> bytes:
    """A PKCS#7 ContentInfo around SignedData with no signers (the signature is not read)."""
    encap = {"content_type": "data", "content": content}
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": encap,
            "signer_infos": [],
        }
    )
    return bytes(cms.ContentInfo({"content_type": content_type, "content": signed}).dump())


def with_p7m(der: bytes, content_type: str, name: str = "smime.p7m") -> bytes:
    return (
        b"From: Anna Berg <anna.berg@contoso.example>\r\nTo: support@example.com\r\n"
        b"Subject: signed\r\nMIME-Version: 1.0\r\nContent-Type: "
        + content_type.encode()
        + b'; name="'
        + name.encode()
        + b'"\r\nContent-Transfer-Encoding: base64\r\n'
        b'Content-Disposition: attachment; filename="'
        + name.encode()
        + b'"\r\n\r\n'
        + base64.encodebytes(der)
    )


ENTITY = (
    b"Content-Type: multipart/mixed; boundary=s\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\n"
    b"Signed words.\r\n--s\r\nContent-Type: text/csv; name=a.csv\r\n"
    b"Content-Disposition: attachment; filename=a.csv\r\n\r\n1,2\r\n--s--\r\n"
)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/pkcs7-mime; smime-type=signed-data",
        "application/x-pkcs7-mime; smime-type=signed-data",
        "application/pkcs7-mime",
        "application/octet-stream",
    ],
)
def test_signed_data_entity_is_read_under_every_label(content_type: str) -> None:
    parsed = parse_message(with_p7m(signed_data(ENTITY), content_type))
    assert parsed.body_text == "Signed words."
    assert names(parsed) == ["smime.p7m", "a.csv"]
    assert attachment(parsed, "a.csv")[1] == b"1,2"


@pytest.mark.parametrize(
    ("der", "content_type", "name"),
    [
        (signed_data(b"%PDF-1.7 signed invoice"), "application/pkcs7-mime", "invoice.pdf.p7m"),
        (signed_data(ENTITY), "application/pkcs7-mime; smime-type=enveloped-data", "smime.p7m"),
        (signed_data(ENTITY), "application/octet-stream", "contract.p7m"),
        (signed_data(ENTITY)[:60], "application/pkcs7-mime; smime-type=signed-data", "smime.p7m"),
        (b"\x30\x80" * 40, "application/pkcs7-mime; smime-type=signed-data", "smime.p7m"),
    ],
    ids=["signed-pdf", "labelled-enveloped", "other-name", "cut-short", "nonsense"],
)
def test_what_is_not_a_signed_mime_entity_stays_a_file(
    der: bytes, content_type: str, name: str
) -> None:
    parsed = parse_message(with_p7m(der, content_type, name))
    assert parsed.body_text == ""
    assert [(a.filename, a.content) for a in parsed.attachments] == [(name, der)]


def test_signed_entity_is_held_to_the_part_limit() -> None:
    entity = b"Content-Type: multipart/mixed; boundary=i\r\n\r\n" + b"".join(
        b"--i\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n for n in range(30)
    )
    raw = with_p7m(signed_data(entity + b"--i--\r\n"), "application/pkcs7-mime")
    assert len(parse_message(raw, max_parts=40).body_text.splitlines()) == 30
    with pytest.raises(
        MessageTooComplex, match=r"more than 20 MIME parts \(maildesk reads at most 20\)"
    ):
        parse_message(raw, max_parts=20)


@FUZZ
@given(st.data())
def test_mutated_pkcs7_never_breaks_the_message(data: st.DataObject) -> None:
    der = bytearray(signed_data(ENTITY))
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(der) - 1))
        der[at] = data.draw(st.sampled_from([0x00, 0x80, 0xFF, 0x30, 0x04, der[at] ^ 0x01]))
    cut = data.draw(st.integers(1, len(der)))
    raw = with_p7m(bytes(der[:cut]), "application/pkcs7-mime; smime-type=signed-data")
    parsed = parse_message(raw)
    assert attachment(parsed, "smime.p7m")[1] == bytes(der[:cut])


def test_a_message_partial_fragment_is_a_file_named_after_its_place() -> None:
    def fragment(number: int, total: str) -> bytes:
        return (
            "From: scanner@example.org\r\nTo: support@example.com\r\nSubject: Report\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: message/partial; id="r1@example.org"; number={number}{total}\r\n'
            "\r\nSubject: Report\r\nContent-Type: text/plain\r\n\r\nLine 1 of the report.\r\n"
        ).encode()

    first = parse_message(fragment(1, ""))
    last = parse_message(fragment(2, "; total=2"))
    assert [a.filename for a in first.attachments] == ["partial-1.eml"]
    assert [a.filename for a in last.attachments] == ["partial-2-of-2.eml"]
    assert first.attachments[0].content_type == "message/partial"
    assert b"Line 1 of the report." in first.attachments[0].content
    assert "Line 1" not in first.body_text  # the fragment is not the body until reassembled
