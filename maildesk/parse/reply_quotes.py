# ruff: noqa: RUF001  (patterns in many scripts: Cyrillic, Greek and full-width letters on purpose)
""" ">"-quoted history that no attribution introduces.

A block of ">" lines at the end is history; so is a single block above the answer (a
bottom-posted reply, maybe with a greeting above the quote). Several blocks with answers
between them are an interleaved reply: there the quotes are the questions and stay, and
only a trailing block goes. An attribution line left right above a removed block ("Bob
<bob@example.org> hat geschrieben:", in a form no pattern knows) goes with it when it
looks like one: it ends with a colon and names an address or a date.
"""

from __future__ import annotations

import re

from maildesk.parse.attribution import is_attribution, names_a_date_or_address

# A quoted line; ">From " is not one but a "From " line escaped by an mbox or an MTA.
_QUOTED = re.compile(r"^\s*>(?!From )")
_DANGLING = re.compile(r"[:：]\s*$")
# A quote starts at the first or second level; ">>> >>> http://…" is decoration, not a quote.
_DEEP = re.compile(r"^\s*>\s*>\s*>")


def is_quoted(line: str) -> bool:
    """A line of ">"-quoted history."""
    return _QUOTED.match(line) is not None


def drop_quotes(lines: list[str]) -> list[str]:
    """The lines without ">"-quoted history (see the module's rules)."""
    blocks = _blocks(lines)
    if not blocks:
        return lines
    start, end = blocks[-1]
    trailing = not any(line.strip() for line in lines[end:])
    if trailing:
        return _without(lines, start, end)
    if len(blocks) == 1 and any(line.strip() for line in lines[end:]):
        return _without(lines, start, end)
    return lines


def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each run of quoted lines, blank lines inside a run included."""
    blocks: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        if not is_quoted(lines[i]) or _DEEP.match(lines[i]):
            i += 1
            continue
        start = i
        end = i + 1
        j = i + 1
        while j < len(lines) and (is_quoted(lines[j]) or not lines[j].strip()):
            if is_quoted(lines[j]):
                end = j + 1
            j += 1
        blocks.append((start, end))
        i = end
    return blocks


def _without(lines: list[str], start: int, end: int) -> list[str]:
    """`lines` without lines[start:end] and an attribution dangling right above it."""
    above = start
    while above > 0 and not lines[above - 1].strip() and above > start - 2:
        above -= 1
    if above > 0 and _looks_like_attribution(lines[above - 1]):
        cut = above - 1
        # An attribution wrapped over two lines: "On …, Name <" / "addr> wrote:".
        if (
            cut > 0
            and lines[cut - 1].strip()
            and is_attribution(
                lines[cut - 1].strip() + " " + lines[cut].strip(), quote_follows=True
            )
        ):
            cut -= 1
        above = cut
    else:
        above = start
    return lines[:above] + lines[end:]


def _looks_like_attribution(line: str) -> bool:
    text = line.strip()
    if not _DANGLING.search(text):
        return False
    return is_attribution(text, quote_follows=True) or names_a_date_or_address(text)
