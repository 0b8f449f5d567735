"""The requester's files in notices to agents, end to end: mail in over SMTP, the notice
read from a real SMTP sink as delivered MIME. Attached up to `[notify] attach_limit`, the
rest named with the command that saves them; images the requester's HTML shows stay
inline in the notice's HTML part; tiny images (logos, pixels) neither listed nor sent."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from maildesk.config import Config, parse_config
from maildesk.errors import ConfigError
from maildesk.mail.render import Envelope, OutgoingAttachment, Rendered, compose
from maildesk.parse.bodies import html_to_text, quotable_html
from tests.agents import ALICE, CAROL, Mailbox
from tests.conftest import Desk, Sink, mail, running_desk

# A minimal PDF (a real one: header, one empty page, xref, trailer), padded to a few KB.
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n" + b"%" + b"x" * 3000 + b"\n"
)
PNG_HEAD = b"\x89PNG\r\n\x1a\n"


def _png(size: int) -> bytes:
    return PNG_HEAD + bytes(range(256)) * (size // 256) + b"\0" * (size % 256 - len(PNG_HEAD))


def _with_files(msg: EmailMessage, *files: tuple[str, str, bytes]) -> EmailMessage:
    for name, ctype, content in files:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return msg


def _files(notice: EmailMessage) -> dict[str, bytes]:
    found = {}
    for part in notice.walk():
        if part.get_filename() and not part.is_multipart():
            found[part.get_filename()] = part.get_payload(decode=True)
    return found


def _text(notice: EmailMessage) -> str:
    body = notice.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def test_requesters_pdf_reaches_the_agent_attached(desk: Desk) -> None:
    alice, carol = Mailbox(desk, ALICE), Mailbox(desk, CAROL)
    desk.send(_with_files(mail("Invoice wrong"), ("invoice 7.pdf", "application/pdf", PDF)))

    [notice] = alice.next()
    [part] = [p for p in notice.iter_attachments()]
    assert part.get_content_type() == "application/pdf"
    assert part.get_filename() == "invoice 7.pdf"
    assert part.get_payload(decode=True) == PDF
    assert "1. invoice 7.pdf (3 KB)" in _text(notice)
    assert "not attached" not in _text(notice)
    [ack] = carol.next()  # nothing changes for the requester
    assert list(ack.iter_attachments()) == [] and not ack.is_multipart()


def test_files_over_the_limit_are_named_with_the_command_that_saves_them(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    path = write_config(db_url, sink.port, extra='[notify]\nattach_limit = "5KB"\n')
    big, mid, small = b"B" * 4000, b"m" * 1500, b"s" * 600
    with running_desk(path, sink) as desk:
        alice = Mailbox(desk, ALICE)
        first = mail("Logs", sender=f"Carol <{CAROL}>")
        desk.send(_with_files(first, ("a.log", "text/plain", big)))
        alice.next()
        [ticket] = desk.tickets()
        reply = mail(f"Re: [{ticket['ref']}] Logs", sender=f"Carol <{CAROL}>")
        files = [
            ("b.bin", "application/octet-stream", big),
            ("c.log", "text/plain", mid),
            ("d.txt", "text/plain", small),
        ]
        desk.send(_with_files(reply, *files))
        [notice] = alice.next()

    ref = ticket["ref"]
    # 5000 bytes: b.bin fits, c.log after it no longer does, d.txt still does
    assert _files(notice) == {"b.bin": big, "d.txt": small}
    text = _text(notice)
    assert "2. b.bin (4 KB)\n" in text and "4. d.txt (600 bytes)\n" in text
    assert f"3. c.log (2 KB), not attached: maildesk ticket attachment save {ref} 3\n" in text
    assert "a.log" not in text  # the first message's file was in the first notice


def test_tiny_images_are_neither_listed_nor_attached(desk: Desk) -> None:
    alice = Mailbox(desk, ALICE)
    msg = _with_files(
        mail("Screen broken"),
        ("logo.png", "image/png", _png(600)),  # a signature logo
        ("screenshot.png", "image/png", _png(30_000)),
    )
    desk.send(msg)

    [notice] = alice.next()
    assert set(_files(notice)) == {"screenshot.png"}
    assert "logo.png" not in _text(notice)
    assert "1. screenshot.png" not in _text(notice)  # numbered as stored: logo.png is 1
    assert "2. screenshot.png (30 KB)" in _text(notice)


def _html_mail(html: str, images: dict[str, bytes]) -> EmailMessage:
    msg = mail("Error dialog", "See the picture.")
    msg.add_alternative(html, subtype="html")
    html_part = msg.get_payload()[1]  # type: ignore[index]
    for cid, content in images.items():
        html_part.add_related(content, "image", "png", cid=f"<{cid}>", filename=f"{cid}.png")
    return msg


def test_inline_images_stay_inline_in_the_notices_html_part(desk: Desk) -> None:
    alice = Mailbox(desk, ALICE)
    html = (
        "<html><head><style>div{display:none}</style></head><body>"
        '<p onclick="x()">The dialog:</p><img src="cid:shot1@client">'
        '<script>alert(1)</script><p>-- <img src="cid:logo@client"></p></body></html>'
    )
    desk.send(_html_mail(html, {"shot1@client": _png(20_000), "logo@client": _png(300)}))

    [notice] = alice.next()
    alternative = notice.get_body(("related", "html"))
    assert notice.get_content_type() == "multipart/alternative"
    [text_part, related] = notice.get_payload()  # type: ignore[misc]
    assert related.get_content_type() == "multipart/related"
    html_part, image = related.get_payload()
    assert alternative is related
    assert image["Content-ID"] == "<shot1@client>"
    assert image.get_payload(decode=True) == _png(20_000)
    shown = html_part.get_content()
    assert '<img src="cid:shot1@client"/>' in shown and "The dialog:" in shown
    for gone in ("logo@client", "<script", "<style", "onclick"):
        assert gone not in shown
    # The notice's own lines are in the HTML part too: a reply quoting it is cut there.
    assert "Your reply goes to:" in shown and "-- maildesk notice MD-1 " in shown
    [marker] = [line for line in _text(notice).splitlines() if line.startswith("-- maildesk n")]
    assert marker in html_to_text(shown).splitlines()
    assert "screenshot" not in text_part.get_content()
    assert "shot1@client.png (20 KB, shown inline)" in text_part.get_content()
    listed = {f["filename"]: f for f in desk.json("ticket", "attachments", "MD-1")}
    assert (listed["shot1@client.png"]["inline"], listed["shot1@client.png"]["hidden"]) == (
        True,
        False,
    )
    assert (listed["logo@client.png"]["inline"], listed["logo@client.png"]["hidden"]) == (
        True,
        True,
    )


def test_the_requesters_html_replaces_their_text_not_a_line_that_repeats_it(
    desk: Desk,
) -> None:
    alice = Mailbox(desk, ALICE)
    msg = _html_mail('<p>Error dialog</p><img src="cid:s@c">', {"s@c": _png(9000)})
    msg.replace_header("Subject", "Error dialog")
    msg.get_payload()[0].set_content("Error dialog")  # type: ignore[index]
    desk.send(msg)

    [notice] = alice.next()
    shown = notice.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Subject:  Error dialog" in shown  # the notice's own line, as it was
    assert "<div><p>Error dialog</p>" in shown


def test_a_flagged_messages_files_are_named_not_attached(desk: Desk) -> None:
    alice, carol = Mailbox(desk, ALICE), Mailbox(desk, CAROL)
    desk.send(mail("Printer on fire"))
    alice.next()
    [ack] = carol.next()
    [ticket] = desk.tickets()
    # A stranger answering the requester's thread (a forward, a list): recorded, flagged.
    stranger = mail(
        "Re: Printer on fire", sender="Mallory <mallory@example.net>", in_reply_to=ack["Message-ID"]
    )
    desk.send(_with_files(stranger, ("tool.pdf", "application/pdf", PDF)))
    [notice] = alice.next()

    assert _files(notice) == {}
    assert "WARNING" in _text(notice)
    save = f"maildesk ticket attachment save {ticket['ref']} 1"
    assert f"1. tool.pdf (3 KB), not attached: {save}" in _text(notice)


def test_without_an_html_part_an_inline_image_goes_as_a_file() -> None:
    env = Envelope(
        from_name="Desk",
        from_addr="support@example.com",
        to=["alice@example.com"],
        subject="s",
        message_id="<x@example.com>",
        date=__import__("datetime").datetime(2026, 1, 1, tzinfo=__import__("datetime").UTC),
    )
    image = OutgoingAttachment("shot.png", "image/png", _png(3000), content_id="shot@c")
    raw = compose(env, Rendered("s", "text\n", None), [image])
    from email import message_from_bytes, policy

    msg = message_from_bytes(raw, policy=policy.default)
    [part] = list(msg.iter_attachments())  # type: ignore[attr-defined]
    assert part.get_content_disposition() == "attachment" and part["Content-ID"] is None


def test_quotable_html_keeps_only_what_is_safe_to_show() -> None:
    html = (
        '<body style="x"><a href="javascript:evil()">a</a><a href="https://e.org/">b</a>'
        '<img src="cid:kept"><img src="cid:dropped"><form><input></form><iframe></iframe></body>'
    )
    assert quotable_html(html, {"kept"}) == (
        '<a>a</a><a href="https://e.org/">b</a><img src="cid:kept"/>'
    )


@pytest.mark.parametrize(
    ("notify", "limit", "minimum"),
    [
        ("", 10_000_000, 2048),
        ('attach_limit = "25MB"\nmin_image_bytes = "1KiB"', 25_000_000, 1024),
        ("min_image_bytes = 0", 10_000_000, 0),
    ],
)
def test_attach_limit_and_min_image_bytes_are_read(
    tmp_path: Path, notify: str, limit: int, minimum: int
) -> None:
    config = _config(tmp_path, notify)
    assert (config.notify.attach_limit, config.notify.min_image_bytes) == (limit, minimum)


def test_a_bad_attach_limit_is_a_config_error_with_its_place(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        _config(tmp_path, "attach_limit = 'lots'")
    assert "[notify] key 'attach_limit'" in str(raised.value)


def _config(tmp_path: Path, notify: str) -> Config:
    text = f"[desk]\naddress = 'support@example.com'\n[notify]\n{notify}\n"
    return parse_config(tomllib.loads(text), tmp_path / "maildesk.toml")
