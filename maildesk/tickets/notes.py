"""A note must never reach the requester, however it is typed: the look-alike checks. Pure.

Lines are matched after NFKC normalisation (a full-width U+FF03 "#note" is "#note"); `#notes`,
`#internal` and `#private` are notes too; and any line starting with "#" (or a look-alike), "-"
or "--" followed by a word within two edits of a note keyword ("#ntoe", "--note", "#note" below
the text), or a "#note" inside a line, is an error unless it is exactly a valid command in the
block: the whole reply is refused, naming the line, and nothing is sent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence

NOTE_WORDS = ("note", "notes", "internal", "private")
NOTE_ERROR = "looks like a note"
# Characters that look like "#" but that NFKC leaves alone (it folds U+FF03 and U+FE5F itself).
_HASH_LIKE = str.maketrans({"♯": "#", "⋕": "#", "⌗": "#"})
# A line that starts like a note command: "#word", "# word", "-word", "--word", after any
# markup ("*", "_", ">", spaces); the word is checked against NOTE_WORDS by edit distance.
_NOTE_START = re.compile(r"^[\s*_>]*(?:#\s*|--?)([^\W\d_][\w-]*)")
# "#note" (or a note keyword) inside a line: a note the agent put after some text.
_NOTE_INLINE = re.compile(r"(?<![\w#])#\s?(?:notes?|internal|private)\b", re.IGNORECASE)
# A #note anywhere keeps the reply internal, even where it is not a valid command: a
# misplaced or misspelt note must never be relayed to the requester.
_NOTE_ANYWHERE = re.compile(r"^\W*#\s*(?:notes?|internal|private)\b", re.IGNORECASE | re.MULTILINE)


def normalise(line: str) -> str:
    """The line as commands are matched: NFKC (full-width and compatibility forms folded),
    "#" look-alikes made "#"."""
    return unicodedata.normalize("NFKC", line).translate(_HASH_LIKE)


def mentions_note(text: str) -> bool:
    """Does a line of `text` start with a #note (or #notes, #internal, #private)?"""
    return bool(_NOTE_ANYWHERE.search(text))


def note_lookalikes(
    lines: Sequence[str], body_start: int, done: Collection[int]
) -> list[tuple[int, str, str]]:
    """Lines a human would mean as a note but that are not a valid #note at the top: a
    misspelt or misplaced note would otherwise be relayed. `done`: lines already judged.
    Each as (line number, the line, the reason)."""
    found = []
    for i, line in enumerate(lines):
        if i + 1 in done:
            continue
        stripped = line.strip()
        m = _NOTE_START.match(stripped)
        word = m.group(1).lower() if m else ""
        lookalike = bool(word) and any(_within(word, k, 2) for k in NOTE_WORDS)
        if lookalike or _NOTE_INLINE.search(stripped):
            where = "" if i < body_start else " below the text"
            found.append(
                (
                    i + 1,
                    stripped,
                    f"{NOTE_ERROR}{where}, so nothing was sent; to keep the reply internal "
                    "start it with a #note line, or reword the line",
                )
            )
    return found


def _within(a: str, b: str, limit: int) -> bool:
    """Is the edit distance (Levenshtein) between a and b at most `limit`?"""
    if abs(len(a) - len(b)) > limit:
        return False
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] <= limit
