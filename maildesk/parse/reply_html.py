"""Quoted history in an HTML reply, found by the structure mail clients give it.

Gmail wraps it in `div.gmail_quote`, Apple Mail and Thunderbird in `blockquote type=cite`
(Thunderbird's attribution in `div.moz-cite-prefix`), Yahoo in `div.yahoo_quoted`, Outlook
starts it at `div#divRplyFwdMsg`, `#appendonsend` or a header block with a `border-top`
separator, Outlook for Mac at `OLK_SRC_BODY_SECTION`, Hotmail at `hr#stopSpelling`, Zimbra
at `hr#zwchr`; several put an `hr` above a From/Sent header block. Removing that
structure before the HTML becomes text leaves only what the author wrote now.
"""

from __future__ import annotations

import re
from typing import Any

from maildesk.parse.attribution import splitter_at

# Elements that are quoted history themselves.
_QUOTE_SELECTORS = (
    "div.gmail_quote",
    "div.gmail_attr",
    "blockquote[type=cite]",
    "div.moz-cite-prefix",
    "div.yahoo_quoted",
    "div[class*=yahoo_quoted]",
    "blockquote.tmail-quote",
)
# Elements where history starts: they and everything after them go.
_CUT_SELECTORS = (
    "div#divRplyFwdMsg",
    "#appendonsend",
    "hr#stopSpelling",
    "hr#zwchr",
    "#OLK_SRC_BODY_SECTION",
    "div.OutlookMessageHeader",
    "div#mail-editor-reference-message-container",
    "div.zmail_extra",
)
_BORDER_TOP = re.compile(r"border-top\s*:\s*solid", re.I)
_CID = re.compile(r"\[cid:[^\]\s]+\]")


def strip_quoted_html(html: str) -> tuple[str, bool]:
    """The HTML without the quoted history its structure marks, and whether any was found."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    found = False
    for selector in _CUT_SELECTORS:
        tag = soup.select_one(selector)
        if tag is not None:
            _cut_from(tag)
            found = True
    for tag in _header_separators(soup):
        _cut_from(_signature_block(tag))
        found = True
    last = _trailing_blockquote(soup)
    if last is not None:
        last.decompose()
        found = True
    for selector in _QUOTE_SELECTORS:
        for tag in soup.select(selector):
            if not tag.decomposed:
                tag.decompose()
                found = True
    return str(soup), found


def drop_cid_placeholders(text: str) -> str:
    """Outlook's `[cid:image001.png@…]` stand-ins for inline images are not text."""
    return _CID.sub("", text)


def _header_separators(soup: Any) -> list[Any]:
    """Outlook's bordered header block, and an `hr` followed by a From/Sent header block."""
    found: list[Any] = []
    for div in soup.find_all(["div", "p"], style=_BORDER_TOP):
        if _starts_header_block(div.get_text("\n")):
            found.append(div)
            break
    for hr in soup.find_all("hr"):
        following = []
        for node in hr.find_all_next(string=True, limit=40):
            following.append(str(node))
        if _starts_header_block("".join(following)):
            found.append(hr)
            break
    return found


def _signature_block(hr: Any) -> Any:
    """The block an `hr` shares with only a name above it ("Bob", then the header block):
    Hotmail puts the sign-off there. The answer is in the blocks before it."""
    parent = hr.parent
    before = "".join(
        str(node) if isinstance(node, str) else node.get_text(" ") for node in hr.previous_siblings
    )
    words = before.split()
    has_text_before = parent is not None and any(
        (str(s) if isinstance(s, str) else s.get_text()).strip() for s in parent.previous_siblings
    )
    name_only = 0 < len(words) <= 3 and not re.search(r"[.!?:]$", before.strip())
    if parent is not None and parent.name == "div" and name_only and has_text_before:
        return parent
    return hr


def _trailing_blockquote(soup: Any) -> Any:
    """A plain `blockquote` with at most a short line after it (a disclaimer, a name):
    quoted history. One with the answer below it, inside another, or Gmail's outside its
    `gmail_quote` div (text the author quoted on purpose) is left alone."""
    quotes = [
        q
        for q in soup.find_all("blockquote")
        if q.find_parent("blockquote") is None and "gmail_quote" not in (q.get("class") or [])
    ]
    if not quotes:
        return None
    last = quotes[-1]
    after = "".join(str(node) for node in last.find_all_next(string=True))
    before = "".join(str(node) for node in last.find_all_previous(string=True))
    if before.strip() and len(after.split()) <= 3:
        return last
    return None


def _starts_header_block(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines() if line.strip()][:12]
    if not lines:
        return False
    found = splitter_at(lines, 0)
    return found is not None and found.kind == "headers"


def _cut_from(tag: Any) -> None:
    """Remove `tag` and everything after it in document order."""
    node = tag
    while node is not None and node.name not in ("body", "html", "[document]"):
        for sibling in list(node.next_siblings):
            sibling.extract()
        node = node.parent
    if not tag.decomposed:
        tag.decompose()
