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


def test_html_only_mail_keeps_its_structure_as_text() -> None:
    """A monitoring summary as an HTML-only mail (the shape web forms and alerting tools
    send): the table stays a table, the lists stay lists, each link keeps its address."""
    html = (
        "<html><body><p>Hello team,</p>"
        "<table><tr><th>Host</th><th>State</th></tr>"
        "<tr><td>web1</td><td>down</td></tr><tr><td>db2</td><td>ok</td></tr></table>"
        "<ul><li>restart <b>web1</b><ul><li>check the disk</li></ul></li>"
        "<li>tell the users</li></ul>"
        "<ol><li>first</li><li>second</li></ol>"
        '<p>Runbook: <a href="https://wiki.example.com/web1">the web1 page</a>, '
        '<a href="https://status.example.com">https://status.example.com</a>, '
        '<a href="mailto:ops@example.com">mail ops</a>.</p></body></html>'
    )
    raw = raw_mail("MIME-Version: 1.0", "Content-Type: text/html; charset=utf-8", body=html)
    assert parse_message(raw).body_text.splitlines() == [
        "Hello team,",
        "",
        "Host | State",
        "web1 | down",
        "db2  | ok",
        "",
        "  * restart web1",
        "      + check the disk",
        "  * tell the users",
        " 1. first",
        " 2. second",
        "",
        "Runbook: the web1 page <https://wiki.example.com/web1>, https://status.example.com, "
        "mail ops <ops@example.com>.",
    ]


# --- text/plain parts with a filename ----------------------------------------------------


def test_inline_text_with_a_filename_is_the_body() -> None:
    raw = raw_mail(
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        'Content-Disposition: inline; filename="message.txt"',
        body="The form was sent from the web site.\n",
    )
    parsed = parse_message(raw)
    assert parsed.body_text == "The form was sent from the web site."
    assert parsed.attachments == ()


def test_hp_openmail_bdy_txt_is_the_body() -> None:
    raw = raw_mail(
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=US-ASCII",
        'Content-Disposition: inline; filename="BDY.TXT"',
        '\t;Creation-Date="Fri, 17 Nov 2000 09:17:56 -0600"',
        "Content-Transfer-Encoding: 7bit",
        body="The boot loader hangs after the kernel loads.\n",
    )
    parsed = parse_message(raw)
    assert parsed.body_text == "The boot loader hangs after the kernel loads."
    assert parsed.attachments == ()


def test_blank_name_is_no_name() -> None:
    raw = multipart(
        'Content-Type: text/plain; charset=iso-8859-1; name=" "\n\nDer Drucker ist kaputt.',
        'Content-Type: application/pdf; name="scan.pdf"\n'
        "Content-Disposition: attachment\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK",
    )
    parsed = parse_message(raw)
    assert parsed.body_text == "Der Drucker ist kaputt."
    assert files(raw) == [("scan.pdf", "application/pdf")]
    assert parsed.charsets == ("iso-8859-1",)


def test_named_text_before_html_alternative_is_the_body() -> None:
    raw = multipart(
        'Content-Type: text/plain; charset=utf-8; name="message.txt"\n'
        "Content-Disposition: inline\n\nPlain version.",
        "Content-Type: text/html; charset=utf-8\n\n<p>HTML version.</p>",
        subtype="alternative",
    )
    parsed = parse_message(raw)
    assert parsed.body_text == "Plain version."
    assert parsed.body_html == "<p>HTML version.</p>"
    assert parsed.attachments == ()


def test_apple_mail_text_between_images_and_an_inline_file() -> None:
    """Apple Mail interleaves text parts with inline images and sends files inline too:
    the text parts are the body, the named .txt after them is a file."""
    image = "Content-Transfer-Encoding: base64\nContent-Disposition: inline; filename={0}\n"
    image += 'Content-Type: image/jpeg; x-unix-mode=0644; name="{0}"\n\n/9j/4AAQSkZJRgABAQ=='
    text = "Content-Transfer-Encoding: 7bit\nContent-Type: text/plain; charset=us-ascii\n\n{}"
    raw = multipart(
        text.format("The screen shows this:"),
        image.format("IMG_0001.jpg"),
        "Content-Transfer-Encoding: 7bit\nContent-Disposition: inline\n"
        "Content-Type: text/plain; charset=us-ascii\n\nand after a restart this:",
        image.format("IMG_0002.jpg"),
        "Content-Disposition: inline; filename=notes.txt\n"
        'Content-Type: text/plain; x-unix-mode=0644; name="notes.txt"\n\nstep 1: reboot',
    )
    parsed = parse_message(raw)
    assert parsed.body_text == "The screen shows this:\nand after a restart this:"
    assert files(raw) == [
        ("IMG_0001.jpg", "image/jpeg"),
        ("IMG_0002.jpg", "image/jpeg"),
        ("notes.txt", "text/plain"),
    ]
    assert parsed.attachments[2].content == b"step 1: reboot"


def test_the_same_named_text_twice_is_body_then_file() -> None:
    part = 'Content-Type: text/plain\nContent-Disposition: inline;\n\tfilename="msg.txt"\n\n{}'
    raw = multipart(part.format("a simple kind of mirror"), part.format("a second copy"))
    parsed = parse_message(raw)
    assert parsed.body_text == "a simple kind of mirror"
    assert files(raw) == [("msg.txt", "text/plain")]
    assert parsed.attachments[0].content == b"a second copy"


@pytest.mark.parametrize(
    "disposition",
    [
        pytest.param('attachment; filename="message.txt"', id="txt-as-attachment"),
        pytest.param('inline; filename="server.log"', id="inline-log"),
        pytest.param('inline; filename="export.csv"', id="inline-csv"),
        pytest.param("attachment", id="attachment-without-name"),
    ],
)
def test_text_that_is_clearly_a_file_stays_a_file(disposition: str) -> None:
    raw = raw_mail(
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Disposition: {disposition}",
        body="2024-05-01 12:00 disk full\n",
    )
    parsed = parse_message(raw)
    assert parsed.body_text == ""
    assert len(parsed.attachments) == 1
    assert parsed.attachments[0].content == b"2024-05-01 12:00 disk full\r\n"


def test_named_txt_after_the_body_is_a_file() -> None:
    raw = multipart(
        "Content-Type: text/plain\n\nThe log is attached.",
        'Content-Type: text/plain; name="message.txt"\n\nline one',
    )
    parsed = parse_message(raw)
    assert parsed.body_text == "The log is attached."
    assert files(raw) == [("message.txt", "text/plain")]


# --- uuencoded files in the text ---------------------------------------------------------


def test_uuencoded_file_becomes_an_attachment() -> None:
    body = f"Here is the screenshot.\n\nbegin 644 screen.png\n{uuencoded(PNG)}\nend\n\nThanks"
    parsed = parse_message(raw_mail(body=body))
    assert parsed.body_text == "Here is the screenshot.\n\nThanks"
    assert files(raw_mail(body=body)) == [("screen.png", "image/png")]
    assert parsed.attachments[0].content == PNG


def test_uuencoded_with_spaces_for_zeros_and_a_path_in_the_name() -> None:
    """Outlook Express and scripts: spaces, not backticks, for zero; the name as typed."""
    body = f"begin 0644 C:\\Temp\\report.pdf\n{uuencoded(PNG, backtick=False)}\nend\n"
    parsed = parse_message(raw_mail(body=body))
    assert parsed.body_text == ""
    assert files(raw_mail(body=body)) == [("report.pdf", "application/pdf")]
    assert parsed.attachments[0].content == PNG


def test_uuencoded_files_follow_the_mime_attachments() -> None:
    text = f"Two files:\nbegin 644 a.bin\n{uuencoded(b'first')}\nend\n"
    text += f"begin 600 b.txt\n{uuencoded(b'second')}\nend\nbye"
    raw = multipart(
        f"Content-Type: text/plain\n\n{text}",
        "Content-Type: application/zip\nContent-Disposition: attachment; filename=logs.zip\n\nPK",
    )
    parsed = parse_message(raw)
    assert parsed.body_text == "Two files:\nbye"
    assert [(a.filename, a.content) for a in parsed.attachments] == [
        ("logs.zip", b"PK"),
        ("a.bin", b"first"),
        ("b.txt", b"second"),
    ]
    assert parsed.attachments[2].content_type == "text/plain"


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(f"begin 644 cut.png\n{uuencoded(PNG)}", id="no-end"),
        pytest.param(
            f"begin 644 bad.png\n{uuencoded(PNG).replace('M', 'm', 1)}\nend", id="bad-line"
        ),
        pytest.param(f"begin 644 short.png\n{uuencoded(PNG)[:30]}\nend", id="cut-line"),
        pytest.param("begin 644 now\nWE ALL KNOW THE PLAN\nend", id="prose-in-capitals"),
        pytest.param("begin 644\n" + uuencoded(b"data") + "\nend", id="no-name"),
        pytest.param("begin 644 empty.bin\n`\nend", id="no-data"),
        pytest.param(f"begin 644 x.bin\n{uuencoded(b'ab')}\n\n#!!\nend", id="data-after-last"),
        pytest.param("Let us begin 644 tests today.\nend", id="not-at-line-start"),
    ],
)
def test_broken_or_false_uuencode_stays_text(block: str) -> None:
    body = f"Before.\n{block}\nAfter."
    parsed = parse_message(raw_mail(body=body))
    assert parsed.body_text == body
    assert parsed.attachments == ()


def test_layout_tables_do_not_frame_every_line_in_separators() -> None:
    """Newsletters and monitoring mail lay themselves out with tables and spacer cells:
    the text keeps the lines, not `|` borders around each (a data table keeps its cells)."""
    html = (
        "<html><body><table><tr><td></td><td width='600'>"
        "<table><tr><td><strong>[1] Firing</strong></td></tr>"
        "<tr><td>alertname = InstanceDown<br>instance = web2:9100</td></tr></table>"
        "</td><td></td></tr></table>"
        "<table><tr><th>Host</th><th>State</th></tr><tr><td>web1</td><td>down</td></tr></table>"
        "</body></html>"
    )
    from maildesk.parse.bodies import html_to_text

    text = html_to_text(html)
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[:3] == ["[1] Firing", "alertname = InstanceDown", "instance = web2:9100"]
    assert lines[3].split() == ["Host", "|", "State"] and lines[4].split() == ["web1", "|", "down"]
