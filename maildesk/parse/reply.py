"""The new text of a reply: quoted history and signatures stripped. Only user of mail-parser-reply.

mail-parser-reply splits a body at the reply headers mail clients write ("On … wrote:",
"Am … schrieb", Outlook's "From: … Sent: …" block, "-----Original Message-----") in many
languages, and finds signatures. Two guards are ours: a trailing block of ">" quotes with
no header is history too, and a "signature" that starts with a closing phrase but reads
like a sentence ("Thanks, but the printer still fails:") is kept, so text is never lost to
an eager pattern. Everything from the marker line that ends each agent notice down is
history as well: a client that quotes a notice without ">" (Outlook) or forwards inside it
loses it there. The full message always stays stored raw.
"""

from __future__ import annotations

import re

from mailparser_reply.parser import EmailMessage

# Every language the library knows; English is always included.
LANGUAGES = ("en", "de", "fr", "it", "es", "nl", "sv", "da", "pl", "cs", "ja", "ko", "zh")
# A quoted line; ">From " is not one but a "From " line escaped by an mbox or an MTA.
_QUOTED = re.compile(r"^\s*>(?!From )")
# A forward carries its content below such a line: that is the message, not history.
_FORWARD = re.compile(
    r"^[ \t]*(-{2,}\s*(forwarded message|weitergeleitete nachricht|message transf.r.)\s*-{2,}"
    r"|begin forwarded message:|anfang der weitergeleiteten nachricht:)",
    re.IGNORECASE | re.MULTILINE,
)
# The last line of every agent notice (maildesk.mail.render.notice_marker). Anywhere in a
# reply it means a quoted notice; unquoted at a line start, what follows is that notice's
# history (a ">"-quoted one is left to the quote rules: the answer may be below it).
NOTICE_MARKER = re.compile(r"-- maildesk notice \S+ [0-9a-f]{8} --")
_MARKER_LINE = re.compile(r"^[ \t]*" + NOTICE_MARKER.pattern + r"[ \t]*$", re.MULTILINE)
_SIGNATURE_SEPARATOR = re.compile(r"^\s*(--\s*|[-_]{2,}.*|sent from .*|get outlook .*)$", re.I)
MAX_SIGNATURE_LINES = 12


def new_text(body: str) -> str:
    """The part of a reply its author wrote now, without history or signature."""
    text = body.replace("\r\n", "\n")
    marker = _MARKER_LINE.search(text)
    if marker:
        text = text[: marker.start()]
    if not text.strip():
        return ""
    if _FORWARD.search(text):
        return text.strip()  # a forward: what it forwards is the point
    text = _drop_leading_quotes(text)
    try:
        reply = EmailMessage(text, languages=list(LANGUAGES), keep_hyphen_lists=True).read()
    except Exception:  # a pathological body: keep all of it rather than lose any
        return text.strip()
    if not reply.replies:
        return text.strip()
    first = reply.replies[0]
    kept = first.body if _is_signature(first.signatures) else first.full_body
    if not kept.strip() and first.full_body.strip():
        kept = first.full_body  # everything looked like a signature: keep it all
    return _drop_trailing_quotes(kept).strip()


def _is_signature(block: str) -> bool:
    """A plausible signature: a separator, or a short closing line and a few lines more."""
    lines = [line for line in block.splitlines() if line.strip()]
    if not lines:
        return False
    if _SIGNATURE_SEPARATOR.match(lines[0]):
        return len(lines) <= MAX_SIGNATURE_LINES + 1
    first = lines[0].strip()
    sentence_like = len(first.split()) > 5 or first.endswith((":", "?"))
    return not sentence_like and len(lines) <= MAX_SIGNATURE_LINES


def _drop_leading_quotes(text: str) -> str:
    """A bottom-posted reply: drop the quote (and its "… wrote:" line) above the answer.

    Only when the answer below has no quotes of its own; answers interleaved with quotes
    keep them, since there the quotes are the questions being answered.
    """
    lines = text.strip().splitlines()
    first_quote = next((i for i, line in enumerate(lines[:4]) if _QUOTED.match(line)), None)
    if first_quote is None:
        return text
    start = first_quote
    # Above the quote only an attribution ("… wrote:", maybe wrapped over two lines).
    attribution = all(line.strip() for line in lines[:start]) and (
        start == 0 or lines[start - 1].rstrip().endswith(":")
    )
    if not attribution:
        return text
    end = start
    while end < len(lines) and (_QUOTED.match(lines[end]) or not lines[end].strip()):
        end += 1
    rest = lines[end:]
    if not rest or any(_QUOTED.match(line) for line in rest):
        return text
    return "\n".join(rest)


def _drop_trailing_quotes(text: str) -> str:
    """Remove a block of '>' lines (and blank lines) at the end: quoted history."""
    lines = text.splitlines()
    end = len(lines)
    while end and (not lines[end - 1].strip() or _QUOTED.match(lines[end - 1])):
        end -= 1
    if end == len(lines) or not any(_QUOTED.match(line) for line in lines[end:]):
        return text
    return "\n".join(lines[:end])
