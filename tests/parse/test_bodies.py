"""maildesk.parse.bodies and .uuencode: the body text a message really has, whatever the
mailer did with it: HTML without a closed head, text parts that carry a filename, files
uuencoded into the text. Every message is constructed here, header for header, in the shape
the named mailer writes; each test parses it with parse_message."""

from __future__ import annotations

import binascii

import pytest

from maildesk.parse import parse_message


def raw_mail(*headers: str, body: str) -> bytes:
    """A message with a From, the given header lines, a blank line and the body (CRLF)."""
    lines = ["From: Carol <carol@client.example.org>", "Subject: help", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


def multipart(*parts: str, subtype: str = "mixed") -> bytes:
    """A multipart message whose parts are given as their header lines, a blank line, body."""
    delimited = "".join(f"--b1\n{part}\n" for part in parts)
    return raw_mail(
        "MIME-Version: 1.0",
        f'Content-Type: multipart/{subtype}; boundary="b1"',
        body=f"{delimited}--b1--\n",
    )


def files(raw: bytes) -> list[tuple[str, str]]:
    return [(a.filename, a.content_type) for a in parse_message(raw).attachments]


def uuencoded(data: bytes, *, backtick: bool = True) -> str:
    """The data as uuencode writes it: 45 bytes a line, then a zero-length line."""
    lines = [
        binascii.b2a_uu(data[i : i + 45], backtick=backtick).decode("ascii").rstrip("\n")
        for i in range(0, len(data), 45)
    ]
    return "\n".join([*lines, "`" if backtick else " "])


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2 + b"\x00" * 50


# --- HTML rendered as text ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        pytest.param(
            "<html><head><title>Ticket</title><meta charset='utf-8'>"
            "<body><p>The VPN drops every hour.</p><p>Since Monday.</p></body></html>",
            "The VPN drops every hour.\n\nSince Monday.",
            id="unclosed-head",
        ),
        pytest.param(
            "<html><head><style>p {margin: 0}</style><link rel=stylesheet href=x.css>"
            "<base href='https://example.com/'><p>Printer jammed</p></html>",
            "Printer jammed",
            id="unclosed-head-no-body",
        ),
        pytest.param(
            "<html><head><title>T</title></head><p>No body tag here</p></html>",
            "No body tag here",
            id="no-body",
        ),
        pytest.param(
            "<head><title>T</title><p>No html tag</p>", "No html tag", id="no-html-unclosed-head"
        ),
        pytest.param("<div>Just a fragment</div>", "Just a fragment", id="fragment"),
        pytest.param(
            "<html><head><!--[if gte mso 9]><xml><o:OfficeDocumentSettings>"
            "<o:AllowPNG/></o:OfficeDocumentSettings></xml><![endif]--></head>"
            "<body><!-- a comment --><p>Seen by all</p>"
            "<!--[if mso]><p>Outlook only</p><![endif]-->"
            "<!--[if !mso]><!--><p>Not Outlook</p><!--<![endif]--></body></html>",
            "Seen by all\n\nNot Outlook",
            id="conditional-comments",
        ),
        pytest.param(
            "<html><body><style>.x {color: red}</style><p class=x>Red text</p>"
            "<script>track()</script></body></html>",
            "Red text",
            id="style-in-body",
        ),
        pytest.param(
            "<html><head><title>Ticket<body><p>Title left open</p></body></html>",
            "Title left open",
            id="unclosed-title",
        ),
    ],
)
def test_html_body_text_survives_broken_structure(html: str, expected: str) -> None:
    raw = raw_mail("MIME-Version: 1.0", "Content-Type: text/html; charset=utf-8", body=html)
    parsed = parse_message(raw)
    assert parsed.body_text == expected
    assert parsed.body_html == html  # stored as it came
    assert parsed.attachments == ()
