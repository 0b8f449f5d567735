"""What a requester's own words ask for: pure checks over a subject or a reply's new text.

- `is_status_request`: a subject that is `status` alone (any case): the sender's tickets.
- `close_request`: a first line `close`, `resolved` or `#close`: resolve the ticket.
- `is_gratitude`: a short thank-you ("thanks!", "danke", "merci", "спасибо", "ありがとう"…,
  with a signature or a "works now"), which must not reopen a resolved ticket.
- `survey_answer`: a first line `good` / `bad` (a comment after it) or a score 1-5.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

CLOSE_WORDS = ("close", "resolved", "#close")

# Thank-you phrases, longest first so "thank you very much" is taken whole.
_THANKS = (
    "thank you very much",
    "thank you so much",
    "thanks a lot",
    "thanks so much",
    "many thanks",
    "thank you",
    "thankyou",
    "thanks",
    "thank u",
    "thx",
    "ty",
    "cheers",
    "vielen dank",
    "danke schön",
    "danke schon",
    "danke sehr",
    "danke",
    "merci beaucoup",
    "merci",
    "muchas gracias",
    "gracias",
    "tack så mycket",
    "tusen tack",
    "tack",
    "takk",
    "tak",
    "dank je wel",
    "dank u wel",
    "dank je",
    "dank u",
    "bedankt",
    "grazie mille",
    "grazie",
    "muito obrigado",
    "muito obrigada",
    "obrigado",
    "obrigada",
    "kiitos",
    "dziękuję",
    "большое спасибо",
    "спасибо",
    "どうもありがとうございます",
    "ありがとうございます",
    "ありがとう",
    "谢谢你",
    "谢谢",
    "多谢",
    "感谢",
)
_THANKS_RE = re.compile("|".join(re.escape(t) for t in _THANKS))
# Words that may stand beside a thank-you without asking for anything more.
_FILLER_WORDS = """a again all and best bien cheers everyone everything fine fixed for good
    great guys
    help helped hi hello it its kind lot much now ok okay perfect really regards resolved
    solved so sorted team that the this very working works you your
    funktioniert jetzt es läuft alles gut ça marche fonctionne maintenant funciona ya ahora
    funkar nu werkt het weer funziona ora obrigado funcionou"""
_FILLERS = frozenset(_FILLER_WORDS.split())
# Any of these means the reply asks for more: never a plain thank-you.
_DOUBT = re.compile(
    r"\?|\b(but|still|not|no|again\s+broken|doesn'?t|don'?t|isn'?t|can'?t|won'?t|aber|"
    r"noch|nicht|mais|pas|pero|todavía|men|inte|maar|niet|ma|ainda|não)\b"
)
_MAX_WORDS = 12
_MAX_LINES = 4
_SIGNATURE = re.compile(r"^(--\s*|__+|sent from my .*)$", re.IGNORECASE)
_SCORE = re.compile(r"^\s*([1-5])(?:\s*(?:/\s*5|of\s+5|stars?))?\s*(?:[-:,.!]\s*)?(.*)$")
_GOOD_BAD = re.compile(r"^\s*(good|bad)\b\s*[-:,.!]*\s*(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class SurveyAnswer:
    """A survey reply: `score` is "good", "bad" or 1-5; `comment` the rest (may be "")."""

    score: str | int
    comment: str

    @property
    def bad(self) -> bool:
        """A `bad` answer, or a score of 1 or 2."""
        return self.score == "bad" or (isinstance(self.score, int) and self.score <= 2)


def is_status_request(subject: str | None) -> bool:
    """A subject that is the word `status` alone (any case, surrounding blanks ignored)."""
    return (subject or "").strip().casefold() == "status"


def _lines(text: str) -> list[str]:
    """The reply's non-blank lines down to its signature."""
    found: list[str] = []
    for line in (text or "").splitlines():
        stripped = line.strip()
        if _SIGNATURE.match(stripped):
            break
        if stripped:
            found.append(stripped)
    return found


def close_request(text: str) -> str | None:
    """The word when the first line is `close`, `resolved` or `#close` (any case, a full
    stop or exclamation mark after it allowed), else None."""
    lines = _lines(text)
    if not lines:
        return None
    word = lines[0].casefold().rstrip(".! ")
    return word if word in CLOSE_WORDS else None


def is_gratitude(text: str) -> bool:
    """A short reply that only says thank you (with perhaps "works now" and a signature)."""
    lines = _lines(text)
    if not lines or len(lines) > _MAX_LINES:
        return False
    flat = unicodedata.normalize("NFC", " ".join(lines)).casefold()
    if _DOUBT.search(flat) or not _THANKS_RE.search(flat):
        return False
    rest = _THANKS_RE.sub(" ", flat)
    words = re.findall(r"[^\W\d_]+", rest)
    if len(words) > _MAX_WORDS:
        return False
    # The first line thanks; later lines may only be a sign-off and a name (two words).
    first_rest = re.findall(r"[^\W\d_]+", _THANKS_RE.sub(" ", lines[0].casefold()))
    if not _THANKS_RE.search(lines[0].casefold()):
        return False
    if any(w not in _FILLERS for w in first_rest):
        return False
    return all(len(line.split()) <= 3 for line in lines[1:])


def survey_answer(text: str) -> SurveyAnswer | None:
    """A survey reply: its first line `good` or `bad` or a score 1-5, the rest a comment."""
    lines = _lines(text)
    if not lines:
        return None
    for pattern in (_GOOD_BAD, _SCORE):
        found = pattern.match(lines[0])
        if found is not None:
            head, tail = found.group(1), found.group(2).strip()
            score: str | int = int(head) if head.isdigit() else head.casefold()
            comment = "\n".join([tail, *lines[1:]] if tail else lines[1:]).strip()
            return SurveyAnswer(score, comment)
    return None
