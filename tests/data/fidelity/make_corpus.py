"""Write the fidelity corpus: one .eml per case and its NAME.expected.json.

    python tests/data/fidelity/make_corpus.py              # rewrite the corpus here
    python tests/data/fidelity/make_corpus.py --out DIR    # write it elsewhere (to compare)
    python tests/data/fidelity/make_corpus.py --sign       # new smime-signed-data.p7m (openssl)

Deterministic: fixed dates, boundaries and Message-IDs, no randomness, so the same script
writes the same bytes. The one input that is not built here is smime-signed-data.p7m, a DER
CMS SignedData over SMIME_INNER made once by `--sign` with a throw-away key (openssl signs
with a fresh key each time, so it is committed rather than rebuilt on every run).

Each expected.json is the truth the fidelity check (bench/fidelity.py) holds maildesk's
reading to: subject, from, snippets body_text must contain and strings it must not
(mojibake, header lines read as body), and the attachments by name or content type.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import quopri
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIGNED_DATA = HERE / "smime-signed-data.p7m"
DATE = "Tue, 03 Mar 2026 09:15:00 +0100"
TO = "support@example.com"

# The MIME entity inside the opaque S/MIME signature (CRLF: S/MIME signs canonical text).
SMIME_INNER = (
    b'Content-Type: multipart/mixed; boundary="----=_inner_0001"\r\n\r\n'
    b"------=_inner_0001\r\n"
    b'Content-Type: text/plain; charset="utf-8"\r\n'
    b"Content-Transfer-Encoding: 7bit\r\n\r\n"
    b"Hello support,\r\n\r\n"
    b"attached is the signed inventory of server room B2 for the audit.\r\n"
    b"Please file it with the asset records.\r\n\r\n"
    b"Regards,\r\nMorgan Lee\r\n\r\n"
    b"------=_inner_0001\r\n"
    b'Content-Type: text/csv; name="inventory-b2.csv"\r\n'
    b"Content-Transfer-Encoding: 7bit\r\n"
    b'Content-Disposition: attachment; filename="inventory-b2.csv"\r\n\r\n'
    b"host,rack,serial\r\nfs01,B2-04,CZ1234XYZ\r\nfs02,B2-05,CZ1235XYZ\r\n\r\n"
    b"------=_inner_0001--\r\n"
)


def head(*fields: tuple[str, str | bytes]) -> bytes:
    """Header lines; a str value is written as raw UTF-8 (RFC 6532), bytes as they are."""
    lines = [
        name.encode("ascii") + b": " + (v if isinstance(v, bytes) else v.encode("utf-8"))
        for name, v in fields
    ]
    return b"\n".join(lines) + b"\n"


def common(
    n: int, sender: str | bytes, subject: str | bytes
) -> tuple[tuple[str, str | bytes], ...]:
    return (
        ("From", sender),
        ("To", TO),
        ("Subject", subject),
        ("Date", DATE),
        ("Message-ID", f"<fidelity-{n:02d}@corpus.example>"),
    )


def mojibake(text: str, charset: str) -> str:
    """What text in `charset` looks like when read as cp1252 (what a wrong fallback shows)."""
    return text.encode(charset).decode("cp1252", "replace")


def text_part(ctype: str, body: bytes, cte: str = "8bit", extra: str = "") -> bytes:
    return f"Content-Type: {ctype}\nContent-Transfer-Encoding: {cte}\n{extra}\n".encode() + body


def multipart(boundary: str, *parts: bytes) -> bytes:
    """The body of a multipart (after its own Content-Type header)."""
    out = b"This is a multi-part message in MIME format.\n"
    for part in parts:
        out += f"\n--{boundary}\n".encode() + part.rstrip(b"\n") + b"\n"
    return out + f"\n--{boundary}--\n".encode()


def ew(text: str, charset: str) -> str:
    """One RFC 2047 encoded-word, base64."""
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data)


def uuencode(name: str, data: bytes) -> bytes:
    lines = [f"begin 644 {name}".encode()]
    lines += [binascii.b2a_uu(data[i : i + 45]).rstrip(b"\n") for i in range(0, len(data), 45)]
    return b"\n".join([*lines, b"`", b"end"]) + b"\n"


def case_eai_sweden() -> tuple[bytes, dict[str, object]]:
    body = (
        "Hej!\n\nSkrivaren på plan 2 är trasig igen, den skriver ut tomma sidor.\n\n"
        "Hälsningar,\nJöran\n"
    )
    raw = head(
        *common(1, "Jöran Öberg <jöran@exämple.se>", "Skrivaren på plan 2 är trasig"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="utf-8"'),
        ("Content-Transfer-Encoding", "8bit"),
    )
    return raw + b"\n" + body.encode(), {
        "about": "EAI (RFC 6532): raw UTF-8 in From (local part and domain) and Subject",
        "subject": "Skrivaren på plan 2 är trasig",
        "from": "jöran@exämple.se",
        "body_contains": ["Skrivaren på plan 2 är trasig igen", "Hälsningar"],
        "body_excludes": [mojibake("på", "utf-8"), "\ufffd"],
        "attachments": [],
    }


def case_eai_china() -> tuple[bytes, dict[str, object]]:
    body = "您好，\n\n三楼的打印机坏了，打印出来的都是白纸。\n\n张伟\n"
    raw = head(
        *common(2, f"{ew('张伟', 'UTF-8')} <用户@例子.中国>", "打印机坏了"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="UTF-8"'),
        ("Content-Transfer-Encoding", "base64"),
    )
    return raw + b"\n" + b64(body.encode()), {
        "about": "EAI (RFC 6532): raw UTF-8 address 用户@例子.中国 after an encoded-word name",
        "subject": "打印机坏了",
        "from": "用户@例子.中国",
        "body_contains": ["三楼的打印机坏了"],
        "body_excludes": [mojibake("打印机", "utf-8"), "\ufffd"],
        "attachments": [],
    }


def case_gb2312_bad_byte() -> tuple[bytes, dict[str, object]]:
    before, after = "我把镜头摔坏了，", "请帮我换一个新的。谢谢！"
    body = before.encode("gb2312") + b"\xff" + after.encode("gb2312") + b"\n"
    raw = head(
        *common(3, f"{ew('李明', 'gb2312')} <li.ming@example.cn>", ew("我把镜头摔坏了", "gb2312")),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="gb2312"'),
        ("Content-Transfer-Encoding", "8bit"),
        ("X-Mailer", "Foxmail 7.2.25.228[cn]"),
    )
    return raw + b"\n" + body, {
        "about": "a GB2312 body with one byte (0xFF) that is not GB2312: gb2312 kept, one U+FFFD",
        "subject": "我把镜头摔坏了",
        "from": "li.ming@example.cn",
        "body_contains": [before, after],
        "body_excludes": [mojibake("我把镜头", "gb2312")],
        "attachments": [],
    }


def case_utf8_bad_byte() -> tuple[bytes, dict[str, object]]:
    before = "Grüße aus Köln, die Übersicht für März fehlt noch."
    after = "Könnt ihr den Bericht bitte neu schicken?"
    body = before.encode() + b" Caf\xe9 " + after.encode() + b"\n"
    raw = head(
        *common(
            4, "Jürgen Weiß <juergen.weiss@example.de>", "=?UTF-8?Q?Bericht_f=C3=BCr_M=C3=A4rz?="
        ),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=UTF-8; format=flowed"),
        ("Content-Transfer-Encoding", "8bit"),
    )
    return raw + b"\n" + body, {
        "about": "a UTF-8 body with one Latin-1 byte (0xE9) in it: UTF-8 kept, one U+FFFD",
        "subject": "Bericht für März",
        "from": "juergen.weiss@example.de",
        "body_contains": [before, after],
        "body_excludes": [mojibake("Grüße", "utf-8"), "Ã"],
        "attachments": [],
    }


RUSSIAN = "Здравствуйте! Не работает принтер на третьем этаже, бумага застревает."


def case_charset_from_sibling() -> tuple[bytes, dict[str, object]]:
    plain = text_part("text/plain", RUSSIAN.encode("koi8-r") + b"\n")
    html = text_part(
        'text/html; charset="koi8-r"',
        f"<html><body><p>{RUSSIAN}</p></body></html>\n".encode("koi8-r"),
    )
    raw = head(
        *common(
            5, f"{ew('Наталья Иванова', 'koi8-r')} <n.ivanova@example.ru>", ew("Принтер", "koi8-r")
        ),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'multipart/alternative; boundary="alt-0005"'),
    )
    return raw + b"\n" + multipart("alt-0005", plain, html), {
        "about": "text/plain without a charset (KOI8-R) beside text/html that declares koi8-r",
        "subject": "Принтер",
        "from": "n.ivanova@example.ru",
        "body_contains": ["Не работает принтер на третьем этаже"],
        "body_excludes": [mojibake("Не работает", "koi8-r"), "\ufffd"],
        "attachments": [],
    }


def case_charset_from_headers() -> tuple[bytes, dict[str, object]]:
    raw = head(
        *common(
            6,
            f"{ew('Наталья Иванова', 'windows-1251')} <n.ivanova@example.ru>",
            ew("Принтер не работает", "windows-1251"),
        ),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain"),
        ("Content-Transfer-Encoding", "8bit"),
    )
    return raw + b"\n" + RUSSIAN.encode("windows-1251") + b"\n", {
        "about": "text/plain without a charset (windows-1251); encoded-words declare it",
        "subject": "Принтер не работает",
        "from": "n.ivanova@example.ru",
        "body_contains": ["Не работает принтер на третьем этаже"],
        "body_excludes": [mojibake("Не работает", "windows-1251"), "\ufffd"],
        "attachments": [],
    }


def case_gb2312_needs_gbk() -> tuple[bytes, dict[str, object]]:
    text = "请联系王喆或者朱镕基办公室的张堃，会议室的投影仪坏了。"
    subject = "=?gb2312?B?" + base64.b64encode("请联系王喆".encode("gbk")).decode() + "?="
    raw = head(
        *common(7, f"{ew('李明', 'gb2312')} <li.ming@example.cn>", subject),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=gb2312"),
        ("Content-Transfer-Encoding", "base64"),
    )
    return raw + b"\n" + b64(text.encode("gbk") + b"\n"), {
        "about": "labelled gb2312, written in GBK (喆, 镕, 堃 are not in GB2312): body and Subject",
        "subject": "请联系王喆",
        "from": "li.ming@example.cn",
        "body_contains": [text],
        "body_excludes": [mojibake("请联系", "gbk"), "\ufffd"],
        "attachments": [],
    }


def case_mixed_encoded_words() -> tuple[bytes, dict[str, object]]:
    subject = "=?ISO-8859-1?Q?Stra=DFen?= =?US-ASCII?Q?bahn?= =?UTF-8?Q?_f=C3=A4hrt_nicht?="
    raw = head(
        *common(
            8,
            "=?UTF-8?Q?J=C3=BCrgen?= =?ISO-8859-1?Q?_Wei=DF?= <juergen.weiss@example.de>",
            subject,
        ),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=us-ascii"),
        ("Content-Transfer-Encoding", "7bit"),
    )
    return raw + b"\nThe tram display on the entrance screen is stuck.\n", {
        "about": "adjacent encoded-words in ISO-8859-1, US-ASCII, UTF-8: no space (RFC 2047 6.2)",
        "subject": "Straßenbahn fährt nicht",
        "from": "juergen.weiss@example.de",
        "body_contains": ["tram display"],
        "body_excludes": [],
        "attachments": [],
    }


def case_raw_gb2312_subject() -> tuple[bytes, dict[str, object]]:
    raw = head(
        *common(
            9, f"{ew('李明', 'gb2312')} <li.ming@example.cn>", "我把镜头摔坏了".encode("gb2312")
        ),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="gb2312"'),
        ("Content-Transfer-Encoding", "8bit"),
    )
    return raw + b"\n" + "镜头摔坏了，需要维修。\n".encode("gb2312"), {
        "about": "a raw 8-bit GB2312 Subject (no encoded-word); the body declares gb2312",
        "subject": "我把镜头摔坏了",
        "from": "li.ming@example.cn",
        "body_contains": ["镜头摔坏了，需要维修"],
        "body_excludes": [mojibake("镜头", "gb2312")],
        "attachments": [],
    }


def case_html_unclosed_head() -> tuple[bytes, dict[str, object]]:
    html = (
        '<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
        "<title>Service request</title>\n<style>p { margin: 0; font-family: Calibri; }</style>\n"
        "<body>\n<p>The scanner in room 4.12 jams on every second page.</p>\n"
        "<p>Model: Canon DR-C225, asset tag IT-3381.</p>\n</body>\n</html>\n"
    )
    raw = head(
        *common(10, "Sam Patel <sam.patel@example.org>", "Scanner jams"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/html; charset="utf-8"'),
        ("Content-Transfer-Encoding", "quoted-printable"),
    )
    return raw + b"\n" + quopri.encodestring(html.encode()), {
        "about": "an HTML-only body whose <head> is never closed",
        "subject": "Scanner jams",
        "from": "sam.patel@example.org",
        "body_contains": ["The scanner in room 4.12 jams", "asset tag IT-3381"],
        "body_excludes": ["font-family", "Service request"],
        "attachments": [],
    }


def case_inline_text_filename() -> tuple[bytes, dict[str, object]]:
    raw = head(
        *common(11, "Dana Fox <dana.fox@example.org>", "Password reset does not arrive"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="utf-8"; name="message.txt"'),
        ("Content-Disposition", 'inline; filename="message.txt"'),
        ("Content-Transfer-Encoding", "7bit"),
    )
    body = b"I requested a password reset three times and no mail arrived.\nUser name: dfox\n"
    return raw + b"\n" + body, {
        "about": "the only text part is text/plain with Content-Disposition: inline and a filename",
        "subject": "Password reset does not arrive",
        "from": "dana.fox@example.org",
        "body_contains": ["no mail arrived", "User name: dfox"],
        "body_excludes": [],
        "attachments": [],
        "attachments_absent": ["message.txt"],
        "no_other_attachments": True,
    }


def case_inline_text_blank_name() -> tuple[bytes, dict[str, object]]:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    text = text_part(
        'text/plain; charset=utf-8; name=" "',
        b"The badge reader at door 7 shows this error:\n",
        cte="7bit",
        extra="Content-Disposition: inline\n",
    )
    image = text_part(
        'image/png; name="photo.png"',
        b64(png),
        cte="base64",
        extra='Content-Disposition: inline; filename="photo.png"\n',
    )
    raw = head(
        *common(12, "Robin Hart <robin.hart@example.org>", "Door 7 badge reader"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'multipart/mixed; boundary="mixed-0012"'),
    )
    return raw + b"\n" + multipart("mixed-0012", text, image), {
        "about": 'a text/plain part with name=" " (a blank name), inline, before an inline photo',
        "subject": "Door 7 badge reader",
        "from": "robin.hart@example.org",
        "body_contains": ["badge reader at door 7 shows this error"],
        "body_excludes": [],
        "attachments": ["photo.png"],
        "no_other_attachments": True,
    }


UU_LOG = b"".join(
    f"2026-03-03 08:{m:02d}:00 backup job failed: disk full\n".encode() for m in range(8)
)


def case_uuencode() -> tuple[bytes, dict[str, object]]:
    body = b"Hello,\n\nthe nightly backup failed again, here is the log.\n\n" + uuencode(
        "backup.log", UU_LOG
    )
    body += b"\nThanks,\nKim\n"
    raw = head(
        *common(13, "Kim Olsen <kim.olsen@example.org>", "Backup failed"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="iso-8859-1"'),
        ("Content-Transfer-Encoding", "7bit"),
        ("X-Mailer", "Microsoft Outlook Express 6.00.2900.5512"),
    )
    return raw + b"\n" + body, {
        "about": "an inline uuencoded file (begin 644 backup.log ... end) in a plain text body",
        "subject": "Backup failed",
        "from": "kim.olsen@example.org",
        "body_contains": ["the nightly backup failed again", "Thanks,"],
        "body_excludes": ["begin 644", uuencode("backup.log", UU_LOG).split(b"\n")[1].decode()],
        "attachments": ["backup.log"],
    }


def forward(
    n: int, subject: str, inner: bytes, cte: str, about: str, expected: dict[str, object]
) -> tuple[bytes, dict[str, object]]:
    encoded = {"base64": b64(inner), "quoted-printable": quopri.encodestring(inner)}.get(cte, inner)
    intro = text_part(
        'text/plain; charset="utf-8"',
        b"Forwarding the mail below, please have a look.\n",
        cte="7bit",
    )
    attached = text_part(
        "message/rfc822", encoded, cte=cte, extra="Content-Disposition: attachment\n"
    )
    raw = head(
        *common(n, "Alex Meyer <alex.meyer@example.org>", subject),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/mixed; boundary="fwd-{n:04d}"'),
    )
    return raw + b"\n" + multipart(f"fwd-{n:04d}", intro, attached), {"about": about, **expected}


def inner_mail(subject: str, body: str, first_line: bytes = b"") -> bytes:
    return (
        first_line
        + head(
            ("From", "Carol Diaz <carol.diaz@example.org>"),
            ("To", "alex.meyer@example.org"),
            ("Subject", subject),
            ("Date", "Mon, 02 Mar 2026 17:40:00 +0100"),
            ("Message-ID", "<inner-forward@corpus.example>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", 'text/plain; charset="utf-8"'),
            ("Content-Transfer-Encoding", "8bit"),
        )
        + b"\n"
        + body.encode()
    )


def case_forward_base64() -> tuple[bytes, dict[str, object]]:
    inner = inner_mail(
        "Disk quota exceeded on fs01", "My home share on fs01 is full and I cannot save.\n"
    )
    return forward(
        14,
        "Fwd: Disk quota exceeded on fs01",
        inner,
        "base64",
        "a forwarded message/rfc822 part sent base64-encoded (RFC 2046 forbids it; mailers do it)",
        {
            "subject": "Fwd: Disk quota exceeded on fs01",
            "from": "alex.meyer@example.org",
            "body_contains": ["Forwarding the mail below", "My home share on fs01 is full"],
            "body_excludes": [],
            "attachments": ["Disk quota exceeded on fs01.eml"],
        },
    )


def case_forward_qp() -> tuple[bytes, dict[str, object]]:
    inner = inner_mail("Zugang gesperrt", "Mein Zugang zum Lohnportal ist gesperrt. Grüße, Carol\n")
    return forward(
        15,
        "Fwd: Zugang gesperrt",
        inner,
        "quoted-printable",
        "a forwarded message/rfc822 part sent quoted-printable-encoded, with UTF-8 text in it",
        {
            "subject": "Fwd: Zugang gesperrt",
            "from": "alex.meyer@example.org",
            "body_contains": [
                "Forwarding the mail below",
                "Mein Zugang zum Lohnportal ist gesperrt. Grüße",
            ],
            "body_excludes": ["=C3=BC", "Content-Transfer-Encoding"],
            "attachments": ["Zugang gesperrt.eml"],
        },
    )


def case_forward_from_line() -> tuple[bytes, dict[str, object]]:
    inner = inner_mail(
        "Printer queue stuck",
        "Nothing prints on PRN-2, the queue shows 41 jobs.\n",
        first_line=b">From carol.diaz@example.org Mon Mar  2 17:40:00 2026\n",
    )
    return forward(
        16,
        "Fwd: Printer queue stuck",
        inner,
        "7bit",
        "a forwarded message whose first line is an mbox-munged '>From ' envelope line",
        {
            "subject": "Fwd: Printer queue stuck",
            "from": "alex.meyer@example.org",
            "body_contains": ["Nothing prints on PRN-2"],
            "body_excludes": ["Message-ID:", "Content-Transfer-Encoding:"],
            "attachments": ["Printer queue stuck.eml"],
        },
    )


def case_forward_subject_slash() -> tuple[bytes, dict[str, object]]:
    inner = inner_mail("Re: build 1/2 failed", "Step 1 of 2 failed on the build server again.\n")
    return forward(
        17,
        "Fwd: Re: build 1/2 failed",
        inner,
        "7bit",
        "a forwarded message without a filename whose subject contains '/'",
        {
            "subject": "Fwd: Re: build 1/2 failed",
            "from": "alex.meyer@example.org",
            "body_contains": ["Step 1 of 2 failed"],
            "body_excludes": [],
            "attachments": [],
            "attachments_matching": [r"^Re.{1,2}build 1.2 failed\.eml$"],
        },
    )


PARTIAL_TEXT = "".join(
    f"Line {i:02d} of the scanner report: all 24 ports answered.\n" for i in range(1, 41)
)


def partial(number: int) -> tuple[bytes, dict[str, object]]:
    inner = (
        head(
            ("Subject", "Scanner report"),
            ("MIME-Version", "1.0"),
            ("Content-Type", 'text/plain; charset="us-ascii"'),
            ("Message-ID", "<scanner-report@corpus.example>"),
        )
        + b"\n"
        + PARTIAL_TEXT.encode()
    )
    cut = len(inner) // 2
    total = "; total=2" if number == 2 else ""
    raw = head(
        *common(17 + number, "Scanner <scanner@example.org>", f"Scanner report (part {number}/2)"),
        ("MIME-Version", "1.0"),
        (
            "Content-Type",
            f'message/partial; id="scanner-report-0303@example.org"; number={number}{total}',
        ),
    )
    return raw + b"\n" + (inner[:cut] if number == 1 else inner[cut:]), {
        "about": f"message/partial fragment {number} of 2 (RFC 2046 5.2.2), total on the last",
        "subject": f"Scanner report (part {number}/2)",
        "from": "scanner@example.org",
        "body_contains": [],
        "body_excludes": ["Content-Type:"],
        "attachments": [],
        "attachment_types": ["message/partial"],
    }


def simple(n: int, subject: str, body: str) -> bytes:
    return (
        head(
            *common(n, "Pat Kim <pat.kim@example.org>", subject),
            ("MIME-Version", "1.0"),
            ("Content-Type", 'text/plain; charset="utf-8"'),
            ("Content-Transfer-Encoding", "8bit"),
        )
        + b"\n"
        + body.encode()
    )


def header_case(about: str, subject: str, body_start: str) -> dict[str, object]:
    return {
        "about": about,
        "subject": subject,
        "from": "pat.kim@example.org",
        "body_contains": [body_start],
        "body_excludes": ["Message-ID:", "Content-Type:", "MIME-Version:"],
        "attachments": [],
    }


def case_bom() -> tuple[bytes, dict[str, object]]:
    raw = b"\xef\xbb\xbf" + simple(
        20, "VPN drops every hour", "The VPN drops every hour on the hour.\n"
    )
    return raw, header_case(
        "a UTF-8 byte-order mark before the first header (a message saved by a Windows editor)",
        "VPN drops every hour",
        "The VPN drops every hour",
    )


def case_indented_first_header() -> tuple[bytes, dict[str, object]]:
    raw = b"  " + simple(21, "Monitor flickers", "My second monitor flickers since the update.\n")
    return raw, header_case(
        "the first header line (From) is indented by two spaces",
        "Monitor flickers",
        "My second monitor flickers",
    )


def case_folded_first_header() -> tuple[bytes, dict[str, object]]:
    raw = b"\tby mx.example.org (Postfix) with ESMTPS id 4Qx1;\n\tTue, 03 Mar 2026 09:15:02 +0100\n"
    raw += simple(22, "Laptop will not boot", "The laptop stops at the BitLocker screen.\n")
    return raw, header_case(
        "the message starts with continuation lines of a header whose first line was cut off",
        "Laptop will not boot",
        "BitLocker screen",
    )


def case_obs_subject() -> tuple[bytes, dict[str, object]]:
    raw = (
        head(
            ("From", "Pat Kim <pat.kim@example.org>"),
            ("To", TO),
            ("Date", DATE),
        )
        + b"Subject : Printer jam on floor 2\n"
        + head(
            ("Message-ID", "<fidelity-23@corpus.example>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", 'text/plain; charset="utf-8"'),
        )
        + b"\nPaper jams in tray 2 of the floor 2 printer.\n"
    )
    return raw, header_case(
        "obsolete header syntax 'Subject :' (space before the colon, RFC 5322 4.5)",
        "Printer jam on floor 2",
        "Paper jams in tray 2",
    )


def case_smime_opaque() -> tuple[bytes, dict[str, object]]:
    der = SIGNED_DATA.read_bytes()
    if SMIME_INNER not in der:
        raise SystemExit(f"{SIGNED_DATA.name} does not hold SMIME_INNER: run with --sign")
    raw = head(
        *common(24, '"Lee, Morgan" <morgan.lee@contoso.example>', "Signed inventory B2"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'application/pkcs7-mime; smime-type=signed-data;\n\tname="smime.p7m"'),
        ("Content-Transfer-Encoding", "base64"),
        ("Content-Disposition", 'attachment;\n\tfilename="smime.p7m"'),
        ("X-Mailer", "Microsoft Outlook 16.0"),
        ("Thread-Index", "AdlOpaqueSignedInventoryB2AAAAAAAAAA=="),
        ("Content-Language", "en-us"),
    )
    return raw + b"\n" + b64(der), {
        "about": "opaque-signed S/MIME (smime-type=signed-data): a text and a CSV inside",
        "subject": "Signed inventory B2",
        "from": "morgan.lee@contoso.example",
        "body_contains": ["signed inventory of server room B2"],
        "body_excludes": [],
        "attachments": ["smime.p7m", "inventory-b2.csv"],
    }


def receipt(
    n: int, subject: str, human: str, notification: str, extra: tuple[tuple[str, str], ...]
) -> bytes:
    boundary = f"report-{n:04d}"
    text = text_part('text/plain; charset="us-ascii"', human.encode(), cte="7bit")
    mdn = text_part("message/disposition-notification", notification.encode(), cte="7bit")
    return (
        head(
            *common(n, "Carol Diaz <carol.diaz@example.org>", subject),
            ("MIME-Version", "1.0"),
            (
                "Content-Type",
                f'multipart/report; report-type=disposition-notification;\n\tboundary="{boundary}"',
            ),
            *extra,
        )
        + b"\n"
        + multipart(boundary, text, mdn)
    )


def case_mdn_thunderbird() -> tuple[bytes, dict[str, object]]:
    human = (
        "This is a Return Receipt for the mail that you sent to carol.diaz@example.org.\n\n"
        "Note: This Return Receipt only acknowledges that the message was displayed on the "
        "recipient's computer. There is no guarantee that the recipient has read or understood "
        "the message contents.\n"
    )
    notification = (
        "Reporting-UA: carol-laptop.example.org; Mozilla Thunderbird\n"
        "Final-Recipient: rfc822;carol.diaz@example.org\n"
        "Original-Message-ID: <ack-md-7@support.example.com>\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\n"
    )
    raw = receipt(
        25,
        "Return Receipt (displayed) - [MD-7] VPN broken",
        human,
        notification,
        (("User-Agent", "Mozilla Thunderbird"),),
    )
    return raw, {
        "about": "a disposition notification (MDN, RFC 8098) as Thunderbird words it",
        "subject": "Return Receipt (displayed) - [MD-7] VPN broken",
        "from": "carol.diaz@example.org",
        "body_contains": ["This is a Return Receipt for the mail that you sent"],
        "body_excludes": [],
        "attachments": [],
    }


def case_read_receipt_outlook() -> tuple[bytes, dict[str, object]]:
    human = (
        "Your message\n\n  To: Carol Diaz\n  Subject: [MD-7] VPN broken\n"
        "  Sent: Tuesday, March 3, 2026 8:02:11 AM (UTC+01:00) Amsterdam, Berlin, Bern, Rome, "
        "Stockholm, Vienna\n\n"
        "was read on Tuesday, March 3, 2026 9:14:52 AM (UTC+01:00) Amsterdam, Berlin, Bern, Rome, "
        "Stockholm, Vienna.\n"
    )
    notification = (
        "Reporting-UA: AM0PR01MB1234.eurprd01.prod.outlook.com; Microsoft Exchange Server\n"
        "Final-Recipient: rfc822;carol.diaz@example.org\n"
        "Original-Message-Id: <ack-md-7@support.example.com>\n"
        "Disposition: automatic-action/MDN-sent-automatically; displayed\n"
        "X-MSExch-Correlation-Key: 3n9yZ0bqJ0uFvXbJ3wz1Ww==\n"
    )
    raw = receipt(
        26,
        "Read: [MD-7] VPN broken",
        human,
        notification,
        (
            ("Thread-Topic", "[MD-7] VPN broken"),
            ("Thread-Index", "AQHZTreadReceiptOutlookAAAAAAAAAA=="),
            ("X-MS-Has-Attach", ""),
            ("X-MS-TNEF-Correlator", ""),
            ("Content-Language", "en-US"),
        ),
    )
    return raw, {
        "about": "Outlook's 'Read:' receipt: multipart/report, 'Your message ... was read on'",
        "subject": "Read: [MD-7] VPN broken",
        "from": "carol.diaz@example.org",
        "body_contains": ["was read on Tuesday, March 3, 2026"],
        "body_excludes": [],
        "attachments": [],
    }


TNEF: dict[str, object] = {
    "about": "Outlook's TNEF winmail.dat (one file inside), the realworld corpus's message",
    "eml": "../realworld/tnef-winmail-outlook.eml",
    "subject": "Printer on floor 3 is broken",
    "from": "lee.grant@northwind.example",
    "body_contains": ["The printer on floor 3 shows error 59.4 again"],
    "body_excludes": [],
    "attachments": ["winmail.dat", "printer-notes.txt"],
}

CASES = {
    "eai-raw-utf8-sweden": case_eai_sweden,
    "eai-raw-utf8-china": case_eai_china,
    "gb2312-one-bad-byte": case_gb2312_bad_byte,
    "utf8-one-bad-byte": case_utf8_bad_byte,
    "charset-from-sibling-part": case_charset_from_sibling,
    "charset-from-headers": case_charset_from_headers,
    "gb2312-needs-gbk": case_gb2312_needs_gbk,
    "encoded-words-mixed-charsets": case_mixed_encoded_words,
    "raw-8bit-gb2312-subject": case_raw_gb2312_subject,
    "html-unclosed-head": case_html_unclosed_head,
    "inline-text-filename": case_inline_text_filename,
    "inline-text-blank-name": case_inline_text_blank_name,
    "uuencode-inline": case_uuencode,
    "forward-rfc822-base64": case_forward_base64,
    "forward-rfc822-quoted-printable": case_forward_qp,
    "forward-mbox-from-line": case_forward_from_line,
    "forward-subject-slash": case_forward_subject_slash,
    "message-partial-1-of-2": lambda: partial(1),
    "message-partial-2-of-2": lambda: partial(2),
    "bom-before-headers": case_bom,
    "indented-first-header": case_indented_first_header,
    "folded-first-header": case_folded_first_header,
    "obs-subject-space-colon": case_obs_subject,
    "smime-opaque-signed": case_smime_opaque,
    "mdn-thunderbird": case_mdn_thunderbird,
    "read-receipt-outlook": case_read_receipt_outlook,
}


def write(out: Path) -> list[Path]:
    """Every case's .eml and .expected.json (and the TNEF expectation) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    expectations: dict[str, dict[str, object]] = {"tnef-winmail-outlook": TNEF}
    for name, build in CASES.items():
        raw, expected = build()
        (out / f"{name}.eml").write_bytes(raw)
        written.append(out / f"{name}.eml")
        expectations[name] = expected
    for name, expected in expectations.items():
        path = out / f"{name}.expected.json"
        path.write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def sign() -> None:
    """A new smime-signed-data.p7m: SMIME_INNER signed with a throw-away self-signed key."""
    subject = "/CN=Morgan Lee/emailAddress=morgan.lee@contoso.example"
    steps = [
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 3650",
        "openssl cms -sign -binary -nodetach -noattr -md sha256 -in inner.txt -signer cert.pem"
        " -inkey key.pem -outform DER -out signed.p7m",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "inner.txt").write_bytes(SMIME_INNER)
        subprocess.run(
            [*steps[0].split(), "-subj", subject], cwd=work, check=True, capture_output=True
        )
        subprocess.run(steps[1].split(), cwd=work, check=True)
        shutil.copyfile(work / "signed.p7m", SIGNED_DATA)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write (default: here)")
    parser.add_argument("--sign", action="store_true", help="make a new smime-signed-data.p7m")
    args = parser.parse_args(argv)
    if args.sign:
        sign()
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
