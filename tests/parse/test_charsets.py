"""Charsets without mojibake: each part decoded on its own in what its charset label really
means, a few invalid bytes replaced rather than the whole part misread, and headers decoded
with the charsets the message declares (RFC 2047 section 6.2 for adjacent encoded-words)."""

from __future__ import annotations

import base64

import pytest

from maildesk.parse import parse_message, summarise
from maildesk.parse.text import codec, decode_text

FROM = b"From: Li Wei <li.wei@client.example.cn>"


def message(*headers: bytes, body: bytes, charset: str | None, cte: str = "8bit") -> bytes:
    """A text/plain message with the given header lines (plus From unless given), body as is."""
    lines = list(headers)
    if not any(h.lower().startswith(b"from:") for h in lines):
        lines.insert(0, FROM)
    ctype = "text/plain" + (f"; charset={charset}" if charset else "")
    lines += [b"MIME-Version: 1.0", f"Content-Type: {ctype}".encode()]
    lines.append(f"Content-Transfer-Encoding: {cte}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body + b"\r\n"


def b_word(charset: str, data: bytes) -> bytes:
    return f"=?{charset}?B?{base64.b64encode(data).decode('ascii')}?=".encode("ascii")


GB_TEXT = "我把镜头对准打印机，屏幕上只显示错误代码。"
GB_BYTES = GB_TEXT.encode("gb2312")
BAD = 12  # a byte offset between two characters


# --- a few invalid bytes: the declared charset, with replacement characters ---------------------


@pytest.mark.parametrize("cte", ["8bit", "base64"])
def test_one_bad_byte_in_a_gb2312_body_keeps_the_charset(cte: str) -> None:
    body = GB_BYTES[:BAD] + b"\xff" + GB_BYTES[BAD:]
    if cte == "base64":
        body = base64.encodebytes(body)
    raw = message(
        b"Subject: " + b_word("gb2312", "打印机坏了".encode("gb2312")),
        body=body,
        charset="gb2312",
        cte=cte,
    )
    parsed = parse_message(raw)
    assert parsed.subject == "打印机坏了"
    assert parsed.from_addr == "li.wei@client.example.cn"
    assert parsed.body_text == GB_TEXT[: BAD // 2] + "\ufffd" + GB_TEXT[BAD // 2 :]


def test_one_bad_byte_in_a_gb2312_encoded_word_keeps_the_charset() -> None:
    word = "打印机坏了".encode("gb2312")
    raw = message(
        b"Subject: " + b_word("gb2312", word[:4] + b"\x80" + word[4:]),
        body=GB_BYTES,
        charset="gb2312",
    )
    parsed = parse_message(raw)
    assert parsed.subject == "打印\ufffd机坏了"
    assert parsed.body_text == GB_TEXT


def test_one_bad_byte_in_a_utf8_body_keeps_the_charset() -> None:
    text = "Grüße aus Köln: das Gerät im Büro druckt nur noch „Müll“, bitte prüfen."
    data = text.encode("utf-8")
    cut = data.index(b"druckt")
    raw = message(
        b"Subject: =?utf-8?q?Ger=C3=A4t_defekt?=",
        body=data[:cut] + b"\xe9" + data[cut:],
        charset="utf-8",
    )
    parsed = parse_message(raw)
    assert parsed.subject == "Gerät defekt"
    assert parsed.body_text == text.replace("druckt", "\ufffddruckt")


def test_a_body_in_another_charset_altogether_is_not_read_with_replacements() -> None:
    # Declared UTF-8, written in Windows-1252: every non-ASCII byte is invalid, so the label
    # is wrong, and the text is read as Windows-1252 instead.
    text = "Der Drucker im Büro druckt nur „Müll“."
    parsed = parse_message(
        message(b"Subject: wrong label", body=text.encode("cp1252"), charset="utf-8")
    )
    assert parsed.body_text == text
    assert parsed.subject == "wrong label"


def test_a_wrongly_labelled_single_byte_part_that_is_utf8_is_read_as_utf8() -> None:
    text = "Grüße – der Drucker in Zürich ist kaputt"
    parsed = parse_message(
        message(b"Subject: Drucker", body=text.encode("utf-8"), charset="iso-8859-1")
    )
    assert parsed.body_text == text


# --- the label means what the mailers that write it send -----------------------------------


@pytest.mark.parametrize(
    ("label", "encoding", "text"),
    [
        pytest.param("gb2312", "gbk", "朱镕基总理", id="gb2312-is-gbk"),
        pytest.param("GB2312", "gb18030", "欧元符号€与𠀀", id="gb2312-is-gb18030"),
        pytest.param("x-gbk", "gbk", "镕", id="x-gbk"),
        pytest.param("euc-kr", "cp949", "햏 뷁 똠", id="euc-kr-is-cp949"),
        pytest.param("ks_c_5601-1987", "cp949", "프린터가 고장났어요 햏", id="ks_c_5601-1987"),
        pytest.param("shift_jis", "cp932", "①番の髙橋です", id="shift_jis-is-cp932"),
        pytest.param("iso-2022-jp", "iso2022_jp_ext", "ｶﾀｶﾅのプリンター", id="iso-2022-jp-kana"),
        pytest.param("iso-2022-jp", "iso2022_jp_2", "①番のプリンター", id="iso-2022-jp-2"),
        pytest.param("iso-8859-8-i", "iso8859-8", "המדפסת לא עובדת", id="iso-8859-8-i"),
        pytest.param("unicode-1-1-utf-7", "utf-7", "Grüße – Drucker", id="unicode-1-1-utf-7"),
        pytest.param("us-ascii", "cp1252", "Preis: 20 € – „kaputt“", id="us-ascii-is-1252"),
        pytest.param("iso-8859-1", "cp1252", "„Müll“ – 5 €", id="latin1-is-1252"),
        pytest.param("windows-874", "cp874", "เครื่องพิมพ์เสีย", id="windows-874"),
        pytest.param("x-unknown", "cp1252", "Grüße aus Köln", id="x-unknown"),
    ],
)
def test_charset_labels_real_mailers_write(label: str, encoding: str, text: str) -> None:
    data = text.encode(encoding)
    raw = message(b"Subject: " + b_word(label, data), body=data, charset=label)
    parsed = parse_message(raw)
    assert (parsed.subject, parsed.body_text) == (text, text)
    assert parsed.charsets == (label.lower(),)


def test_windows_1252_bytes_it_leaves_undefined_are_kept() -> None:
    # WHATWG's windows-1252 keeps 0x81, 0x8D, 0x8F, 0x90 and 0x9D as C1 controls.
    assert decode_text(b"caf\xe9 \x80 \x81\x9d", "iso-8859-1") == "café € \x81\x9d"


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("gb2312", "gb18030"),
        ('"GBK"', "gb18030"),
        ("euc-kr", "cp949"),
        ("ks_c_5601-1987", "cp949"),
        ("shift_jis", "cp932"),
        ("x-sjis", "cp932"),
        ("big5", "big5hkscs"),
        ("iso-8859-8-i", "iso8859-8"),
        ("iso88591", "windows-1252"),
        ("latin1", "windows-1252"),
        ("x-cp1250", "cp1250"),
        ("win-1251", "cp1251"),
        ("utf-8*en", "utf-8"),
        ("unicode-1-1-utf-7", "utf-7"),
        ("x-mac-roman", "mac-roman"),
        ("x-unknown", None),
        ("unknown-8bit", None),
        ("unicode_escape", None),
        ("base64", None),
    ],
)
def test_charset_labels_map_to_codecs(label: str, name: str | None) -> None:
    assert codec(label) == name


# --- raw 8-bit headers: UTF-8, then the message's own charsets, then Windows-1252 -------------


def test_raw_8bit_gb2312_subject_is_read_in_the_body_charset() -> None:
    raw = message(
        b"Subject: " + "打印机坏了".encode("gb2312"),
        b"From: " + "李伟".encode("gb2312") + b" <li.wei@client.example.cn>",
        body=GB_BYTES,
        charset="gb2312",
    )
    parsed = parse_message(raw)
    assert parsed.subject == "打印机坏了"
    assert (parsed.from_name, parsed.from_addr) == ("李伟", "li.wei@client.example.cn")
    assert parsed.body_text == GB_TEXT
    assert parsed.header("subject") == "打印机坏了"
    assert summarise(raw).subject == "打印机坏了"


def test_raw_8bit_subject_cut_short_inside_a_character_keeps_the_rest() -> None:
    subject = "打印机坏了".encode("gb2312")[:-1]
    parsed = parse_message(message(b"Subject: " + subject, body=GB_BYTES, charset="gb2312"))
    assert parsed.subject == "打印机坏\ufffd"


def test_raw_8bit_subject_is_read_in_the_charset_of_the_encoded_words() -> None:
    # No body charset; the From phrase's encoded-word says KOI8-R.
    name = b_word("koi8-r", "Ольга".encode("koi8-r"))
    raw = message(
        b"From: " + name + b" <olga@example.ru>",
        b"Subject: " + "Принтер не печатает".encode("koi8-r"),
        body="Добрый день".encode("koi8-r"),
        charset=None,
    )
    parsed = parse_message(raw)
    assert (parsed.from_name, parsed.from_addr) == ("Ольга", "olga@example.ru")
    assert parsed.subject == "Принтер не печатает"
    assert parsed.body_text == "Добрый день"


def test_raw_8bit_utf8_subject_wins_over_a_single_byte_body_charset() -> None:
    raw = message(
        b"Subject: " + "Gerät prüfen".encode(),
        body="Grüße".encode("iso-8859-1"),
        charset="iso-8859-1",
    )
    parsed = parse_message(raw)
    assert (parsed.subject, parsed.body_text) == ("Gerät prüfen", "Grüße")


# --- part by part ------------------------------------------------------------------------------


def multipart(*parts: tuple[str | None, bytes], subject: bytes = b"Subject: parts") -> bytes:
    out = [
        FROM,
        subject,
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="b1"',
        b"",
    ]
    for charset, data in parts:
        ctype = "text/plain" + (f"; charset={charset}" if charset else "")
        out += [b"--b1", f"Content-Type: {ctype}".encode(), b"Content-Transfer-Encoding: 8bit"]
        out += [b"", data]
    return b"\r\n".join([*out, b"--b1--", b""])


def test_each_part_is_decoded_in_its_own_charset() -> None:
    parsed = parse_message(
        multipart(
            ("utf-8", "Grüße – €".encode()),
            ("koi8-r", "Принтер".encode("koi8-r")),
            ("gb2312", GB_BYTES[:BAD] + b"\xff" + GB_BYTES[BAD:]),
        )
    )
    first, second, third = parsed.body_text.split("\n")
    assert (first, second) == ("Grüße – €", "Принтер")
    assert third == GB_TEXT[: BAD // 2] + "\ufffd" + GB_TEXT[BAD // 2 :]
    assert parsed.charsets == ("utf-8", "koi8-r", "gb2312")


def test_a_part_without_charset_is_read_in_the_charset_of_the_other_parts() -> None:
    parsed = parse_message(
        multipart(("gb2312", "第一部分".encode("gb2312")), (None, "第二部分".encode("gb2312")))
    )
    assert parsed.body_text == "第一部分\n第二部分"


def test_a_part_without_charset_is_read_in_the_charset_of_the_headers() -> None:
    subject = b"Subject: " + b_word("gb2312", "打印机".encode("gb2312"))
    parsed = parse_message(multipart((None, GB_BYTES), subject=subject))
    assert parsed.subject == "打印机"
    assert parsed.body_text == GB_TEXT


# --- RFC 2047 section 6.2: no space between adjacent encoded-words ------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        pytest.param(
            b"=?us-ascii?q?Drucker_f?= =?utf-8?q?=C3=BCr_J=C3=BCrgen?=",
            "Drucker für Jürgen",
            id="ascii-then-utf8",
        ),
        pytest.param(
            b"=?utf-8?q?B=C3=BCro?= =?us-ascii?q?drucker_kaputt?=",
            "Bürodrucker kaputt",
            id="utf8-then-ascii",
        ),
        pytest.param(
            b_word("gb2312", "我把".encode("gb2312")) + b"\r\n " + b_word("utf-8", "镜头".encode()),
            "我把镜头",
            id="gb2312-then-utf8-folded",
        ),
        pytest.param(
            b"=?iso-8859-1?q?M=FCller?= =?utf-8?q?=E2=80=93?= =?koi8-r?b?8NLJztTF0g==?=",
            "Müller–Принтер",
            id="three-charsets",
        ),
        pytest.param(
            b"Re: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?K=F6ln?= !",
            "Re: Grüße aus Köln !",
            id="space-next-to-text-kept",
        ),
        pytest.param(
            b"=?utf-8?q?M=C3=BCller?=, Hans", "Müller, Hans", id="no-space-added-before-text"
        ),
        pytest.param(
            b_word("utf-8", "镜头".encode()[:4]) + b" " + b_word("utf-8", "镜头".encode()[4:]),
            "镜头",
            id="character-split-across-words",
        ),
        pytest.param(
            b"=?utf-8?b?not*base64?= =?utf-8?q?ok?=",
            "=?utf-8?b?not*base64?= ok",
            id="broken-word-kept-as-written",
        ),
    ],
)
def test_adjacent_encoded_words_are_joined_without_space(subject: bytes, expected: str) -> None:
    parsed = parse_message(message(b"Subject: " + subject, body=b"Hello desk.", charset=None))
    assert parsed.subject == expected
    assert parsed.body_text == "Hello desk."
    assert parsed.from_addr == "li.wei@client.example.cn"


def test_display_name_words_in_two_charsets_are_joined() -> None:
    header = b"From: =?iso-8859-1?q?J=FCrgen?= =?utf-8?q?_Wei=C3=9F?= <jw@example.org>"
    parsed = parse_message(message(header, b"Subject: hi", body=b"x", charset=None))
    assert (parsed.from_name, parsed.from_addr) == ("Jürgen Weiß", "jw@example.org")
