"""The text and HTML bodies: the inline text parts decoded in their charsets, with
mail-parser's reading, leftover text parts and the HTML rendered as text as fallbacks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import Message
from typing import Any

from maildesk.parse.attachments import first_text_part, is_attachment, part_filename
from maildesk.parse.text import WS, decode_text, safe
from maildesk.parse.tnef import tnef_body
from maildesk.parse.tree import Part

# HTML elements that start a new line in the fallback rendering; inline ones (span, b, a) do not.
_BLOCK_TAGS = ["p", "div", "li", "tr", "table", "ul", "ol", "blockquote", "pre", "hr", "h1",
               "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer"]  # fmt: skip
# Characters lxml refuses in a document (C0 controls but tab, newline and carriage return).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINKED = re.compile(r"^\s*(https?:|mailto:)", re.I)
_LIST_ITEM = re.compile(r"^\s*([*+o-]|\d+\.) ")  # inscriptis's bullets, by depth
_CELL_SEPARATOR = " | "
_EDGE_CELLS = re.compile(r"^\s*(?:\|(?:\s+|$))+|(?:\s+\|)+\s*$")


def html_to_text(html: str) -> str:
    """Readable text from an HTML body, laid out by inscriptis: scripts and styles dropped,
    blocks on their own lines, table rows one a line with their cells separated by ` | `,
    list items as bullets (`*`, `+` nested, `1.` numbered), links as `text <url>`."""
    from bs4 import BeautifulSoup  # loaded only for mail that has HTML and no text

    soup = BeautifulSoup(_CONTROL.sub("", html), "html.parser")
    _drop_unseen(soup)
    _spell_out_links(soup)
    _keep_line_breaks(soup)
    try:
        text = _laid_out(str(soup))
    except Exception:  # markup lxml cannot take: the plain reading keeps the text
        text = _plain_text(soup)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _laid_out(html: str) -> str:
    """inscriptis's rendering; each line's trailing padding dropped, and its indentation
    too except a list item's (which shows how deep it is nested)."""
    from inscriptis import get_text
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.model.config import ParserConfig

    # "strict" lays out as a browser does ("relaxed" pads blocks and spaces out spans).
    config = ParserConfig(css=CSS_PROFILES["strict"], table_cell_separator=_CELL_SEPARATOR)
    text = get_text(html, config)
    lines = (_cells(line.rstrip()) for line in text.splitlines())
    return "\n".join(line if _LIST_ITEM.match(line) else line.lstrip() for line in lines)


def _cells(line: str) -> str:
    """A table row without the empty cells at its edges: HTML mail lays itself out with
    tables whose spacer cells would otherwise frame every line in separators. The padding
    that aligns a data table's columns stays."""
    stripped = _EDGE_CELLS.sub("", line)
    return stripped if stripped.strip() else ""


def _plain_text(soup: Any) -> str:
    """The text with blocks on their own lines and nothing else laid out."""
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(_BLOCK_TAGS):
        block.insert_before("\n")
        block.insert_after("\n")
    text = soup.get_text("")
    return "\n".join(WS.sub(" ", line).strip() for line in text.splitlines())


def _keep_line_breaks(soup: Any) -> None:
    """A line break inside a run of text stays one, as mail readers have always shown the
    text of HTML mail (some clients write `My\\r\\nreply` and no `<br>`); breaks between
    tags, and those in `<pre>`, are left to the layout."""
    from bs4.element import NavigableString

    for node in list(soup.find_all(string=True)):
        if type(node) is not NavigableString or node.find_parent(["pre", "textarea"]):
            continue
        lines = str(node).replace("\r\n", "\n").split("\n")
        filled = [i for i, line in enumerate(lines) if line.strip()]
        if len(filled) < 2:
            continue
        pieces: list[Any] = [NavigableString("\n".join(lines[: filled[0]]) + lines[filled[0]])]
        for line in lines[filled[0] + 1 : filled[-1] + 1]:
            pieces += [soup.new_tag("br"), NavigableString(line)]
        pieces[-1] = NavigableString(str(pieces[-1]) + "\n".join(["", *lines[filled[-1] + 1 :]]))
        node.replace_with(*pieces)


def _spell_out_links(soup: Any) -> None:
    """`<a href="https://x">the page</a>` reads `the page <https://x>` (a link whose text is
    its address, or that has no text, stays as it is)."""
    for a in soup.find_all("a", href=True):
        href = str(a["href"]).strip()
        text = a.get_text(" ", strip=True)
        shown = href[7:] if href.lower().startswith("mailto:") else href
        if _LINKED.match(href) and text and text not in (href, shown):
            a.append(f" <{shown}>")


def _drop_unseen(soup: Any) -> None:
    """Remove what a browser does not show: head content, scripts and styles (comments,
    conditional ones included, are not text to get_text). The head element itself is only
    unwrapped: html.parser nests everything after an unclosed <head> inside it, where a
    browser ends the head at the first text or body tag; what is left in it is shown."""
    from bs4.element import Declaration, NavigableString, ProcessingInstruction

    for tag in soup(["script", "style", "meta", "link", "base"]):
        tag.decompose()
    for node in soup.find_all(string=lambda s: isinstance(s, Declaration | ProcessingInstruction)):
        node.extract()
    for title in soup("title"):
        # Unclosed, html.parser nests the document inside it: drop only the title's text.
        for text in [c for c in title.children if isinstance(c, NavigableString)]:
            text.extract()
        title.unwrap()
    for head in soup("head"):
        head.unwrap()


def bodies(mp: Any, parts: list[Part], hints: Sequence[str] = ()) -> tuple[str, str]:
    """Text and HTML bodies. Our walk decodes every charset (mail-parser leaves 7-bit ones
    such as ISO-2022-JP and UTF-7 undecoded); mail-parser's own reading and any text left in
    the tree are the fallbacks, so a body is only empty when the message has no text.
    `hints`: the message's charsets, tried for a part its own charset does not decode."""
    text, html = _walked_bodies(parts, hints)
    if not text and not html:
        text = "\n".join(safe(lambda: [str(t) for t in mp.text_plain], None) or []).strip()
        html = "\n".join(safe(lambda: [str(t) for t in mp.text_html], None) or []).strip()
    if not text and not html:
        # A multipart without boundaries, text/* parts of unknown kinds: keep their text.
        text = _leftover_text(parts, hints)
    if not text and not html:  # Outlook's "Rich Text" mail: the body is in the winmail.dat
        text, html = tnef_body(parts)
    if not text and html:
        text = safe(lambda: html_to_text(html), "")
    return text.replace("\r\n", "\n"), html


def _walked_bodies(parts: list[Part], hints: Sequence[str]) -> tuple[str, str]:
    """The text/plain and text/html parts that are not attachments, each decoded."""
    plain: list[str] = []
    html: list[str] = []
    first_text = first_text_part(parts)
    for p in parts:
        if p.container or is_attachment(p.part, first_text):
            continue
        ctype = safe(lambda p=p: p.part.get_content_type(), "text/plain")
        if ctype in ("text/plain", "text/html"):
            (plain if ctype == "text/plain" else html).append(_part_text(p.part, hints))
    return "\n".join(t for t in plain if t).strip(), "\n".join(t for t in html if t).strip()


def _leftover_text(parts: list[Part], hints: Sequence[str]) -> str:
    texts = []
    first_text = first_text_part(parts)
    for p in parts:
        ctype = safe(lambda p=p: p.part.get_content_type(), "text/plain")
        maintype, _, subtype = ctype.partition("/")
        readable = maintype in ("text", "multipart") or subtype == "plain"
        if not p.container and readable and not is_attachment(p.part, first_text):
            texts.append(_part_text(p.part, hints))
    return "\n".join(t for t in texts if t.strip()).strip()


def _part_text(part: Message, hints: Sequence[str] = ()) -> str:
    """The part's text, decoded on its own: in its declared charset (a few invalid bytes
    replaced), else as UTF-8, else in one of the message's other charsets (`hints`)."""
    payload = safe(lambda: part.get_payload(decode=True), None)
    if not isinstance(payload, bytes):
        raw = safe(lambda: part.get_payload(), "")
        return raw if isinstance(raw, str) else ""
    charset = safe(lambda: part.get_content_charset(), None)
    return decode_text(payload, charset, hints).strip()


def charsets(parts: list[Part]) -> tuple[str, ...]:
    """The declared charsets of the text parts that are not files, lower-cased, in order."""
    found = (
        safe(lambda p=p: p.part.get_content_charset(), None)
        for p in parts
        if safe(lambda p=p: p.part.get_content_maintype(), "") == "text"
        and not part_filename(p.part)
    )
    return tuple(dict.fromkeys(c.lower() for c in found if isinstance(c, str) and c))


# What a notice quoting a requester's HTML drops: active content, and anything that could
# restyle or cover the notice's own text around it (a forged-sender warning, say).
_UNSAFE_TAGS = ["script", "style", "link", "meta", "base", "iframe", "frame", "frameset",
                "object", "embed", "applet", "form", "input", "button", "select", "textarea",
                "title", "svg", "math"]  # fmt: skip
_KEPT_ATTRS = {"href", "src", "alt", "title", "width", "height", "colspan", "rowspan", "align"}
_CID = re.compile(r"^\s*cid:(.+?)\s*$", re.I)
_SAFE_LINK = re.compile(r"^\s*(https?:|mailto:|cid:|#)", re.I)


def cid_references(html: str) -> set[str]:
    """The Content-IDs (without angle brackets) that an HTML body's images show."""
    if "cid:" not in html.lower():
        return set()
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    found = (_CID.match(str(img.get("src") or "")) for img in soup.find_all("img"))
    return {m.group(1).strip("<>") for m in found if m}


def quotable_html(html: str, keep_cids: set[str]) -> str:
    """A received HTML body made fit to show inside a notice: the body's content only, no
    scripts, styles, frames or forms, no attributes but links, sources and sizes; images
    shown by cid: only where the notice carries that image (`keep_cids`)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(_UNSAFE_TAGS):
        tag.decompose()
    for tag in soup.find_all(True):
        tag.attrs = {
            k: v
            for k, v in tag.attrs.items()
            if k.lower() in _KEPT_ATTRS
            and (k.lower() not in ("href", "src") or _SAFE_LINK.match(str(v)))
        }
        cid = _CID.match(str(tag.get("src") or "")) if tag.name == "img" else None
        if cid and cid.group(1).strip("<>") not in keep_cids:
            tag.decompose()
    for name in ("html", "head", "body"):
        for tag in soup(name):
            tag.unwrap()
    return str(soup).strip()
