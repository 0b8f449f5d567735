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
    "blockquote.gmail_quote",
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
        _cut_from(tag)
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
