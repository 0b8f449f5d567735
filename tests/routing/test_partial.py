"""maildesk.routing.partial: message/partial fragments (RFC 2046 §5.2.2) read, decided about
against the fragments already stored, and reassembled by the RFC's header rules."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from maildesk.parse.parser import parse_message
from maildesk.routing.partial import (
    MAX_FRAGMENTS,
    Fragment,
    Sibling,
    as_attachment,
    plan,
    read_fragment,
    reassemble,
)
from tests.conftest import mail

MB = 1000**2


def fragments(
    whole: bytes,
    count: int,
    set_id: str = "report.1@client.example.org",
    *,
    sender: str = "Carol Customer <carol@client.example.org>",
    total_on_last_only: bool = False,
    extra: bytes = b"",
) -> list[bytes]:
    """`whole` split into `count` message/partial fragments at line ends, as a mail
    program splits a message too big to send at once (RFC 2046 §5.2.2): the enclosed
    header all in fragment 1."""
    head, separator, body = whole.partition(b"\r\n\r\n")
    assert separator, "a message with CRLF line ends (policy.SMTP)"
    lines = body.splitlines(keepends=True)
    size = -(-len(lines) // count)
    chunks = [b"".join(lines[i * size : (i + 1) * size]) for i in range(count)]
    chunks[0] = head + b"\r\n\r\n" + chunks[0]
    out = []
    for i in range(count):
        number = i + 1
        total = "" if total_on_last_only and number < count else f"; total={count}"
        enclosing = (
            f"From: {sender}\r\nTo: support@example.com\r\n"
            f"Subject: Big report (part {number} of {count})\r\n"
            f"Message-ID: <part{number}.{set_id}>\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: message/partial; id="{set_id}"; number={number}{total}\r\n'
        ).encode()
        out.append(enclosing + (extra if number == 1 else b"") + b"\r\n" + chunks[i])
    return out


def whole_message(body: str = "line of the report\n" * 40) -> bytes:
    msg = mail("Big report", body, sender="Carol Customer <carol@client.example.org>")
    return msg.as_bytes(policy=policy.SMTP)


def sibling(raw_id: int, number: int, total: int | None, state: str = "waiting") -> Sibling:
    frag = Fragment("set@x", number, total, "carol@client.example.org")
    return Sibling(raw_id, frag, 1000, state)


@pytest.mark.parametrize(
    ("content_type", "number", "total", "problem"),
    [
        ('message/partial; id="a@b"; number=2; total=3', 2, 3, ""),
        ('message/partial; id="a@b"; number=1', 1, None, ""),  # total on the last one only
        ('Message/Partial; ID=a; NUMBER="3"; TOTAL="3"', 3, 3, ""),
        ("message/partial; number=1; total=2", 1, 2, "no id parameter"),
        ('message/partial; id="a@b"; number=x', 0, None, "number parameter"),
        ('message/partial; id="a@b"; number=0; total=2', 0, 2, "number parameter"),
        ('message/partial; id="a@b"; number=4; total=3', 4, 3, "past its total"),
        ('message/partial; id="a@b"; number=1; total=-1', 1, None, "total parameter"),
        ("message/partial; id=" + "x" * 300 + "; number=1", 1, None, "longer than"),
    ],
)
def test_read_fragment(content_type: str, number: int, total: int | None, problem: str) -> None:
    raw = f"From: c@d.example\r\nContent-Type: {content_type}\r\n\r\nbody\r\n".encode()
    found = read_fragment(raw)
    assert found is not None
    assert (found.number, found.total) == (number, total)
    assert (problem in found.problem) if problem else found.problem == ""
    assert found.sender == "c@d.example"


def test_ordinary_mail_is_no_fragment() -> None:
    assert read_fragment(whole_message()) is None
    assert read_fragment(b"Content-Type: message/rfc822\r\n\r\nFrom: x@y\r\n\r\nhi\r\n") is None


def test_plan_waits_then_reassembles_in_number_order() -> None:
    arrived = sibling(7, 2, None)
    waiting = plan(arrived, [sibling(5, 3, 3)], expired=False, max_size=MB)
    assert (waiting.action, waiting.why) == ("wait", "waiting for 1")
    first = plan(sibling(9, 1, None), [sibling(5, 3, 3), arrived], expired=False, max_size=MB)
    assert (first.action, first.parts) == ("reassemble", (9, 7, 5))


def test_plan_without_a_total_waits_for_the_last() -> None:
    decided = plan(sibling(2, 2, None), [sibling(1, 1, None)], expired=False, max_size=MB)
    assert decided.action == "wait"
    assert decided.why == "waiting for the last (the one that says total=)"


def test_plan_a_fragment_already_stored_is_a_duplicate() -> None:
    for state in ("waiting", "reassembled"):
        decided = plan(sibling(8, 2, 3), [sibling(4, 2, 3, state)], expired=False, max_size=MB)
        assert (decided.action, decided.duplicate_of) == ("duplicate", 4)


@pytest.mark.parametrize(
    ("arrived", "stored", "expired", "max_size", "why"),
    [
        (sibling(3, 2, 3), [sibling(1, 1, None)], True, MB, "not complete within 7 days"),
        (sibling(3, 2, MAX_FRAGMENTS + 1), [], False, MB, "more than 100 fragments"),
        (sibling(3, 2, 3), [sibling(1, 1, 4)], False, MB, "disagree on the total (3, 4)"),
        (sibling(3, 3, None), [sibling(1, 4, 2)], False, MB, "numbered past the total 2"),
        (sibling(3, 2, 3), [sibling(1, 1, None)], False, 1500, "over the message size limit"),
        (sibling(3, 2, 3), [sibling(1, 1, 3, "released")], False, MB, "as ordinary mail"),
        (sibling(3, 3, 3), [sibling(1, 1, 2, "reassembled")], False, MB, "already reassembled"),
    ],
)
def test_plan_gives_a_set_up(
    arrived: Sibling, stored: list[Sibling], expired: bool, max_size: int, why: str
) -> None:
    decided = plan(arrived, stored, expired=expired, max_size=max_size)
    assert decided.action == "ordinary"
    assert why in decided.why
    # The set's other waiting fragments follow this one as ordinary mail.
    assert decided.release == tuple(s.raw_id for s in stored if s.state == "waiting")


def test_reassembly_follows_the_rfc_header_rules() -> None:
    whole = (
        b"From: Carol <carol@client.example.org>\r\nX-Enclosed-Only: dropped\r\n"
        b"Subject: Big report\r\nMessage-ID: <whole@client.example.org>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"\r\nfirst line\r\nsecond line\r\nthird line\r\n"
    )
    extra = b"Received: from mx.client.example.org by mx.example.com;\r\n\tMon, 23 Nov 2026\r\n"
    parts = fragments(whole, 3, extra=extra)
    joined = reassemble(parts)
    header, _, body = joined.partition(b"\r\n\r\n")
    names = [line.split(b":")[0] for line in header.split(b"\r\n") if line[:1] not in b" \t"]
    # Fragment 1's enclosing fields (Content-*, Subject, Message-ID, MIME-Version out), in
    # order, then those from the enclosed header; the enclosed message's other fields go.
    assert names == [
        b"From",
        b"To",
        b"Received",
        b"Subject",
        b"Message-ID",
        b"MIME-Version",
        b"Content-Type",
    ]
    assert b"\tMon, 23 Nov 2026" in header  # a folded field kept whole
    assert body == b"first line\r\nsecond line\r\nthird line\r\n"
    parsed = parse_message(joined)
    assert (parsed.subject, parsed.message_id) == ("Big report", "<whole@client.example.org>")
    assert parsed.from_addr == "carol@client.example.org"


def test_reassembly_of_a_mime_message_with_an_attachment() -> None:
    original = mail("Logs", "See the attached log.", sender="carol@client.example.org")
    original.add_attachment(
        b"\x00\x01log data\xff" * 500,
        maintype="application",
        subtype="gzip",
        filename="printer.log.gz",
    )
    raw = original.as_bytes(policy=policy.SMTP)
    parsed = parse_message(reassemble(fragments(raw, 4)))
    assert parsed.body_text == "See the attached log."
    [attachment] = parsed.attachments
    assert attachment.filename == "printer.log.gz"
    assert attachment.content == b"\x00\x01log data\xff" * 500


def test_a_fragment_as_ordinary_mail_keeps_itself_as_an_attachment() -> None:
    raw = fragments(whole_message(), 3)[1]
    this = read_fragment(raw)
    assert this is not None
    msg = as_attachment(parse_message(raw), raw, this, "the set was not complete within 7 days")
    [attachment] = msg.attachments
    assert attachment.content == raw and attachment.content_type == "message/partial"
    assert attachment.filename == "partial-2-of-3.eml"
    assert "Fragment 2 of 3" in msg.body_text and "not complete within 7 days" in msg.body_text
    assert message_from_bytes(attachment.content).get_content_type() == "message/partial"
