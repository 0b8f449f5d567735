"""The new text of a reply: quoted history and signatures stripped. Only user of mail-parser-reply.

In order: an HTML reply loses the history its structure marks (maildesk.parse.reply_html);
the text is cut at the first attribution, header block or separator, in any language that
maildesk.parse.attribution knows, keeping an answer written below a ">" quote; ">" quotes
with no attribution go when they trail or when one block sits above the answer, and stay
when answers are interleaved with them; then mail-parser-reply splits at the reply headers
it knows and finds signatures, and one-word sign-offs and "Sent from <app>" lines go too.
A "signature" that reads like a sentence ("Thanks, but the printer still fails:") is
kept, so text is never lost to an eager pattern. Everything from the marker line that ends
each agent notice down is history as well: a client that quotes a notice without ">"
(Outlook) or forwards inside it loses it there. The full message always stays stored raw.
"""

from __future__ import annotations

import re

from mailparser_reply.parser import EmailMessage

from maildesk.parse.attribution import first_splitter, is_attribution
from maildesk.parse.reply_html import drop_cid_placeholders, strip_quoted_html
from maildesk.parse.reply_quotes import drop_quotes, is_quoted
from maildesk.parse.reply_signature import drop_signature, is_signature

# Every language the library knows; English is always included.
LANGUAGES = ("en", "de", "fr", "it", "es", "nl", "sv", "da", "pl", "cs", "ja", "ko", "zh")
# A forward carries its content below such a line: that is the message, not history.
_FORWARD = re.compile(
    r"^[ \t]*(-{2,}\s*(forwarded message|weitergeleitete nachricht|message transf.r.|"
    r"mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|vidarebefordrat meddelande|"
    r"videresendt meddelelse|wiadomość przekazana|přeposlaná zpráva|пересланное сообщение)"
    r"\s*-{2,}|begin forwarded message:|anfang der weitergeleiteten (nachricht|e-mail):)",
    re.IGNORECASE | re.MULTILINE,
)
# The last line of every agent notice (maildesk.mail.render.notice_marker). Anywhere in a
# reply it means a quoted notice; unquoted at a line start, what follows is that notice's
# history (a ">"-quoted one is left to the quote rules: the answer may be below it).
NOTICE_MARKER = re.compile(r"-- maildesk notice \S+ [0-9a-f]{8} --")
_MARKER_LINE = re.compile(r"^[ \t]*" + NOTICE_MARKER.pattern + r"[ \t]*$", re.MULTILINE)
# "reply On Wed, Apr 4, 2012 at 3:59 PM, bob@example.com wrote:" on one line.
_SHARED_LINE = re.compile(r"^(?P<text>.*?\S)\s*(?P<attr>-*\s*\bOn\s.{5,200}\bwrote:)\s*$")


def new_text(body: str, body_html: str = "") -> str:
    """The part of a reply its author wrote now, without history or signature."""
    text = _from_text(body)
    if not body_html.strip():
        return text
    try:
        html, found = strip_quoted_html(body_html)
    except Exception:  # unparsable HTML: the text rules alone
        return text
    if not found:
        return text
    from maildesk.parse.bodies import html_to_text

    from_html = _from_text(html_to_text(html))
    return _reconcile(text, from_html)


def _from_text(body: str) -> str:
    """The new text by the text rules alone."""
    text = drop_cid_placeholders(body.replace("\r\n", "\n"))
    marker = _MARKER_LINE.search(text)
    if marker:
        text = text[: marker.start()]
    if not text.strip():
        return ""
    lines = _split_shared_lines(text.strip("\n").split("\n"))
    splitter = first_splitter(lines)
    forward = _FORWARD.search("\n".join(lines[: splitter.start] if splitter else lines))
    if forward:
        return text.strip()  # a forward: what it forwards is the point
    if splitter is not None and splitter.kind == "headers" and not _filled(lines[: splitter.start]):
        # The message's own headers pasted on top (a reply sent with them): skip them.
        lines = lines[splitter.end :]
        splitter = first_splitter(lines)
    if splitter is not None:
        cut = lines[: splitter.start] + _answer_below(lines[splitter.end :])
        lines = cut if _filled(cut) else lines  # history on top with nothing new: keep all
    lines = drop_quotes(lines)
    kept = _library_reply("\n".join(lines))
    return drop_signature(kept).strip()


def _filled(lines: list[str]) -> bool:
    return any(line.strip() for line in lines)


def _split_shared_lines(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        match = _SHARED_LINE.match(line)
        if match and not is_quoted(line) and is_attribution(match.group("attr")):
            out += [match.group("text").rstrip("-").rstrip(), match.group("attr")]
        else:
            out.append(line)
    return out


def _answer_below(after: list[str]) -> list[str]:
    """What follows an attribution: an answer written below its ">" quote, or nothing."""
    start = 0
    while start < len(after) and not after[start].strip():
        start += 1
    if start == len(after) or not is_quoted(after[start]):
        return []  # history that is not ">"-quoted runs to the end
    last = max(i for i, line in enumerate(after) if line.strip())
    if is_quoted(after[last]):
        return []  # the quote runs to the end: nothing was written below it
    end = start
    while end < len(after) and (is_quoted(after[end]) or not after[end].strip()):
        end += 1
    rest = after[end:]
    if any(is_quoted(line) for line in rest):
        return after  # answers between quotes: the quotes are the questions
    splitter = first_splitter(rest)
    if splitter is not None:
        rest = rest[: splitter.start] + _answer_below(rest[splitter.end :])
    return rest


def _library_reply(text: str) -> str:
    """mail-parser-reply's first fragment, its signature dropped when it is one."""
    if not text.strip():
        return text
    try:
        reply = EmailMessage(text, languages=list(LANGUAGES), keep_hyphen_lists=True).read()
    except Exception:  # a pathological body: keep all of it rather than lose any
        return text
    if not reply.replies:
        return text
    first = reply.replies[0]
    kept = str(first.body if is_signature(first.signatures) else first.full_body)
    if not kept.strip() and first.full_body.strip():
        kept = str(first.full_body)  # everything looked like a signature: keep it all
    return kept if kept.strip() else text


def _reconcile(from_text: str, from_html: str) -> str:
    """Prefer the plain text as typed; cut it where the HTML's structure ends the answer."""
    text_words, html_words = _words(from_text), _words(from_html)
    if text_words == html_words or not html_words:
        return from_text
    if text_words[: len(html_words)] == html_words:
        lines, count = [], 0
        for line in from_text.split("\n"):
            if count >= len(html_words):
                break
            lines.append(line)
            count += len(_words(line))
        return drop_signature("\n".join(lines)).strip()
    if html_words[: len(text_words)] == text_words:
        return from_text
    return from_html if len(html_words) < len(text_words) else from_text


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())
