# ruff: noqa: RUF001  (patterns in many scripts: Cyrillic, Greek and full-width letters on purpose)
"""Signatures at the end of a reply's new text.

A signature is a "-- " block, a "Sent from <app>" line (in many languages), or a short
closing ("Thanks", "Cheers,", "Mit freundlichen Grüßen", "Regards, Roman") with at most a
few short lines below it. A closing that reads like a sentence ("Thanks, but the printer
still fails:") is text, and nothing is dropped when nothing would be left.
"""

from __future__ import annotations

import re

_SEPARATOR = re.compile(r"^\s*(--\s*|[-_]{2,}.*|sent from .*|get outlook .*)$", re.I)
MAX_SIGNATURE_LINES = 12
_SENT_FROM = re.compile(
    r"^\s*(?:sent from|sent with|sent via|get outlook for|envoyé de|envoyé depuis|"
    r"von meinem .* gesendet|gesendet von|inviato da|enviado desde|enviado do|enviado de|"
    r"verzonden (?:met|vanaf)|skickat från|sendt fra|wysłane z|wysłano z|отправлено с|"
    r"odesláno z|lähetetty|iphoneから送信|从我的|發自我的|내 .*에서 보냄)\b.{0,80}$",
    re.I,
)
_CLOSINGS = (
    r"thanks|thank you|thx|cheers|regards|best regards|kind regards|warm regards|best|"
    r"best wishes|all the best|br|kr|mfg|lg|vg|gruß|grüße|viele grüße|beste grüße|"
    r"liebe grüße|mit freundlichen grüßen|danke|merci|cordialement|bien à vous|bises|"
    r"salutations|gracias|saludos|un saludo|atentamente|grazie|saluti|cordiali saluti|"
    r"obrigado|obrigada|abraços|cumprimentos|groeten|met vriendelijke groet|groetjes|"
    r"bedankt|tack|hälsningar|mvh|med vänliga hälsningar|takk|hilsen|med venlig hilsen|"
    r"venlig hilsen|dziękuję|dzięki|pozdrawiam|pozdrowienia|z poważaniem|děkuji|"
    r"s pozdravem|díky|kiitos|terveisin|спасибо|с уважением|всего доброго|köszönöm|"
    r"üdvözlettel|teşekkürler|saygılarımla|ευχαριστώ|よろしくお願いします|谢谢|此致"
)
# A closing, maybe "a lot" or "again", maybe a name after it ("Regards, Roman"): never a
# sentence ("Thanks for the fix", "Thanks, but the printer still fails").
_CLOSING = re.compile(
    rf"^\s*(?i:{_CLOSINGS})(?i:\s+(?:a lot|so much|again|in advance|all|everyone))?\s*[,.!]*"
    r"(?:\s*[A-ZÀ-ÞА-ЯΑ-Ω][\w.'\-]*(?:\s+[A-ZÀ-ÞА-ЯΑ-Ω][\w.'\-]*)?)?\s*[,.!]*\s*$"
)


def is_signature(block: str) -> bool:
    """A plausible signature: a separator, or a short closing line and a few lines more."""
    lines = [line for line in block.splitlines() if line.strip()]
    if not lines:
        return False
    if _SEPARATOR.match(lines[0]):
        return len(lines) <= MAX_SIGNATURE_LINES + 1
    first = lines[0].strip()
    sentence_like = len(first.split()) > 5 or first.endswith((":", "?"))
    return not sentence_like and len(lines) <= MAX_SIGNATURE_LINES


def drop_signature(text: str) -> str:
    """`text` without a trailing sign-off or "Sent from" line; all of it if nothing is left."""
    lines = text.rstrip().split("\n")
    while lines and _SENT_FROM.match(lines[-1]):
        lines = _trim(lines[:-1])
    filled = [i for i, line in enumerate(lines) if line.strip()]
    for i in filled[-4:]:
        if i == filled[0]:
            continue
        if _CLOSING.match(lines[i]) and _short_tail(lines[i + 1 :]):
            lines = _trim(lines[:i])
            break
    kept = "\n".join(lines).strip()
    return kept if kept else text


def _short_tail(lines: list[str]) -> bool:
    """The lines below a closing: a name, maybe a title or a phone number."""
    filled = [line.strip() for line in lines if line.strip()]
    return len(filled) <= 3 and all(_name_like(line) for line in filled)


def _name_like(line: str) -> bool:
    """ "Alice Admin | IT", "+49 30 1234", "B": mostly capitalised words, digits or marks."""
    words = line.split()
    if len(line) > 60 or len(words) > 6 or line.endswith(("?", ".", ":", "!")):
        return False
    marked = [
        w for w in words if not w[0].isalpha() or w[0].isupper() or any(c.isdigit() for c in w)
    ]
    return 2 * len(marked) >= len(words) + (1 if len(words) > 2 else 0)


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines
