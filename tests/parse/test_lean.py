"""The lean parse of big messages reads every part as the email package reads it."""

from __future__ import annotations

import base64
import email
import os
from email.message import Message

import pytest

from maildesk.parse import lean
from maildesk.parse.parser import parse_message

BIG = lean.CUT_MIN + 12_345


def _b64(data: bytes, eol: bytes) -> bytes:
    return eol.join(base64.encodebytes(data).splitlines()) + eol


def _leaf(ctype: str, data: bytes, eol: bytes, name: str = "f.bin") -> bytes:
    head = (
        f"Content-Type: {ctype}; name={name}\nContent-Transfer-Encoding: base64\n"
        f'Content-Disposition: attachment; filename="{name}"\n\n'
    )
    return head.replace("\n", eol.decode()).encode() + _b64(data, eol)


def _multipart(boundary: str, parts: list[bytes], eol: bytes, epilogue: bytes = b"") -> bytes:
    e = eol.decode()
    out = f'Content-Type: multipart/mixed; boundary="{boundary}"{e}{e}preamble{e}'.encode()
    for p in parts:
        out += f"--{boundary}{e}".encode() + p
    return out + f"--{boundary}--{e}".encode() + epilogue


def _message(body: bytes, eol: bytes) -> bytes:
    head = "From: a@example.com\nTo: b@example.com\nSubject: big\nMIME-Version: 1.0\n"
    return head.replace("\n", eol.decode()).encode() + body


def _text(eol: bytes) -> bytes:
    return f"Content-Type: text/plain{eol.decode()}{eol.decode()}hello{eol.decode()}".encode()


def _cases() -> list[tuple[str, bytes]]:
    data = os.urandom(BIG)
    small = os.urandom(1000)
    cases = []
    for eol in (b"\r\n", b"\n"):
        tag = "crlf" if eol == b"\r\n" else "lf"
        top = _leaf("application/pdf", data, eol).replace(b"Content-Disposition", b"X-Note", 1)
        cases.append((f"single-part-{tag}", _message(top, eol)))
        mixed = _multipart("b1", [_text(eol), _leaf("application/pdf", data, eol)], eol)
        cases.append((f"mixed-{tag}", _message(mixed, eol)))
        inner = _multipart("in", [_leaf("image/png", data, eol, "a.png"), _text(eol)], eol)
        nested = _multipart("out", [inner, _leaf("application/zip", small, eol)], eol, b"tail")
        cases.append((f"nested-epilogue-{tag}", _message(nested, eol)))
        fwd_inner = _message(_multipart("fw", [_leaf("application/pdf", data, eol)], eol), eol)
        fwd = b"Content-Type: message/rfc822" + eol + eol + fwd_inner
        cases.append((f"forward-{tag}", _message(_multipart("m", [_text(eol), fwd], eol), eol)))
        two = _multipart("t", [_leaf("a/b", data, eol, "1"), _leaf("a/b", data[::-1], eol)], eol)
        cases.append((f"two-big-{tag}", _message(two, eol)))
    bad = _leaf("application/pdf", data, b"\n")[:-3] + b"\n"  # the padding cut off
    cases.append(("bad-padding", _message(_multipart("p", [bad], b"\n"), b"\n")))
    return cases


def _leaves(msg: Message) -> list[tuple[str, object, object]]:
    return [
        (p.get_content_type(), p.get_payload(decode=True), p.get_payload())
        for p in msg.walk()
        if not p.is_multipart()
    ]


@pytest.mark.parametrize(("name", "raw"), _cases(), ids=[n for n, _ in _cases()])
def test_every_part_reads_as_the_email_package_reads_it(name: str, raw: bytes) -> None:
    lean_msg = lean.message_from_bytes(raw)
    assert _leaves(lean_msg) == _leaves(email.message_from_bytes(raw))
    assert lean_msg.as_bytes() == email.message_from_bytes(raw).as_bytes()


@pytest.mark.parametrize(("name", "raw"), _cases()[:5], ids=[n for n, _ in _cases()[:5]])
def test_big_bodies_are_kept_as_views_of_the_bytes(name: str, raw: bytes) -> None:
    msg = lean.message_from_bytes(raw)
    cut = [p for p in msg.walk() if isinstance(p, lean.LeanMessage) and p.cut is not None]
    assert cut, "no big body was cut out"
    assert all(len(p.cut or b"") >= lean.CUT_MIN for p in cut)


def test_a_parsed_big_attachment_is_byte_exact() -> None:
    data = os.urandom(BIG)
    raw = _message(
        _multipart("b", [_text(b"\r\n"), _leaf("application/pdf", data, b"\r\n")], b"\r\n"), b"\r\n"
    )
    parsed = parse_message(raw)
    assert [a.content for a in parsed.attachments] == [data]
    assert parsed.body_text.strip() == "hello"


def test_a_marker_written_by_the_sender_is_only_text() -> None:
    data = os.urandom(BIG)
    raw = _message(_multipart("b", [_text(b"\n"), _leaf("a/b", data, b"\n")], b"\n"), b"\n")
    msg = lean.message_from_bytes(raw.replace(b"hello", b"deadbeefdeadbeef-0"))
    assert [p.get_payload(decode=True) for p in msg.walk() if not p.is_multipart()][1] == data
