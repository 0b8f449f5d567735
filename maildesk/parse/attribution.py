# ruff: noqa: RUF001, RUF003  (Cyrillic, Greek and full-width letters on purpose)
"""Where quoted history starts in a reply's text: attribution lines, header blocks and
separators as mail clients write them, in many languages.

An attribution ("On … wrote:", "Am … schrieb …:", "Le … a écrit :", "2017-11-24 16:32
GMT+01:00 Name <addr>:") may be wrapped over up to five lines; a header block is two or
more of From/Sent/To/Subject (in any of the languages below) within a few lines; a
separator is "-----Original Message-----" and its translations, a line of underscores, or
"--- Name wrote ---". Only unquoted lines start history here: ">"-quoted history is the
quote rules' business (maildesk.parse.reply).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Verbs that end an attribution ("… wrote:"), optionally followed by the author's name.
_WROTE = (
    r"wrote|sent|writes|schrieb|geschrieben|geschreven|a\s+[ée]crit|ha\s+scritto|scrisse|escribi[óo]|"
    r"escreveu|schreef|skrev|skriver|napisa[łl](?:\(a\)|a)?|nades[łl]a[łl]|napsal(?:\(a\)|a)?|"
    r"написал(?:\(а\)|а)?|пишет|kirjoitti|ezt\s+írta|írta|yazd[ıi]|έγραψε|đã\s+viết|scrie|a\s+scris|"
    r"写道|寫道|のメッセージ|は書きました|님이\s*작성"
)
_WROTE_ANYWHERE = re.compile(_WROTE, re.IGNORECASE)
# Words an attribution line starts with, for the forms that wrap before their verb.
_OPENERS = (
    r"on|am|le|il|el|em|op|den|d\.|på|w\s+dniu|dnia|dne|vào|в|el\s+día|ke|ons|kl\.|"
    r"sent|from|στις|[\u3000-\u9fff]"
)
# Verbs that also run in sentences ("I sent 3 pages:"): never an attribution without an
# opener or a date at its start.
_WEAK = re.compile(r"\b(?:sent|writes|skriver|pisze|пишет|scrie)\b", re.I)
# A date ("2026-12-01", "01.12.2026", "1 Dec 2026", "Dec 1, 2026", "2026年") or a time.
_DATE = (
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\s?\d{1,2}[-/.]\s?\d{2,4}|"
    r"\d{1,2}\.?\s+[^\W\d]{3,}\.?,?\s+\d{4}|[^\W\d]{3,}\.?\s+\d{1,2},?\s+\d{4}|\d{4}年|"
    r"\d{1,2}-[^\W\d]{3,}-\d{2,4}"
)
_TIME = r"\b\d{1,2}[:.h]\d{2}\b"
_ATTRIBUTION = re.compile(
    rf"^(?:-{{2,}}\s*)?(?P<head>.{{0,300}}?)(?:\b|(?<=\s)|(?<=[\u3000-\u9fff]))(?:{_WROTE})"
    rf"(?:\s.{{0,120}}?)?\s*[:：]?\s*-*\s*$",
    re.IGNORECASE,
)
# "2017-11-24 16:32 GMT+01:00 Name <addr>:", "вт, 1 дек. 2026 г. в 18:27, Name <addr>:",
# "26.06.2014, 14:41, "Name" <addr>:": a date, then an address, then a colon.
_DATE_ADDRESS = re.compile(
    r"^.{0,120}\d.{0,200}[<(\[]\s*(?:mailto:)?[^\s<>()@]+@[^\s<>()]+\s*[>)\]]\s*[:：]\s*$"
)
# An attribution in a form no pattern knows: a time, an address, a colon at the end.
_LOOSE = re.compile(r"^.{0,150}\b\d{1,2}[:.h]\d{2}\b.{0,150}[:：]\s*$")
# Gmail's old form without a colon: "2011/4/7 Name <addr>".
_DATE_FIRST_ADDRESS = re.compile(
    r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b.{0,120}<[^\s<>@]+@[^\s<>]+>\s*$"
)

_ORIGINAL = (
    r"original\s+message|reply\s+message|forwarded\s+by|ursprüngliche\s+nachricht|"
    r"original-nachricht|antwort\s+nachricht|oprindelig\s+meddelelse|opprinnelig\s+melding|"
    r"ursprungligt\s+meddelande|originalmeddelande|mensaje\s+original|mensagem\s+original|"
    r"message\s+d'origine|message\s+original|mail\s+original|messaggio\s+originale|origineel\s+bericht|"
    r"oorspronkelijk\s+bericht|oryginalna\s+wiadomo[śs][ćc]|wiadomo[śs][ćc]\s+oryginalna|"
    r"p[ůu]vodn[íi]\s+zpr[áa]va|alkuper[äa]inen\s+viesti|исходное\s+сообщение|"
    r"пересылаемое\s+сообщение|eredeti\s+üzenet|orijinal\s+mesaj|原始邮件|原始郵件|"
    r"元のメッセージ|원본\s*메시지"
)
_SEPARATOR = re.compile(rf"^\s*(?:-{{2,}}\s*)?(?:{_ORIGINAL})\s*:?\s*(?:-{{2,}})?\s*$", re.I)
_DASHED = re.compile(r"^\s*-{2,}\s*(?P<inner>.*?)\s*-{2,}\s*$")
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")

_FROM = (
    r"from|von|de|da|van|fra|från|frá|od|от|от\s+кого|lähettäjä|feladó|kimden|afzender|"
    r"remitente|expéditeur|发件人|發件人|寄件者|差出人|보낸\s*사람"
)
_SENT = (
    r"sent|date|gesendet|datum|envoyé|enviado|enviada|inviato|data|verzonden|sendt|skickat|"
    r"wysłano|wysłany|отправлено|дата|odesláno|lähetetty|päivämäärä|elküldve|dátum|"
    r"gönderildi|tarih|发送时间|發送時間|日期|送信日時|日時|보낸\s*날짜"
)
_OTHER = (
    r"to|an|à|a|para|aan|til|till|do|кому|komu|vastaanottaja|címzett|kime|收件人|宛先|"
    r"받는\s*사람|subject|betreff|objet|oggetto|asunto|assunto|onderwerp|emne|ämne|temat|"
    r"тема|předmět|aihe|tárgy|konu|主题|主旨|件名|제목|cc|kopie|kopia|dw|копия|másolat|"
    r"bilgi|抄送|副本|참조|organization|organisation|importance|priorität|reply-to"
)
_HEADER = re.compile(
    rf"^\s*[*]?(?P<name>{_FROM}|{_SENT}|{_OTHER})[*]?\s*[:：]\s*[*]?(?P<value>.*)$", re.I
)
_FROM_NAME = re.compile(rf"^(?:{_FROM})$", re.I)
_SENT_NAME = re.compile(rf"^(?:{_SENT})$", re.I)
_ADDRESS = re.compile(r"[^\s<>()\[\]@]+@[^\s<>()\[\]]+")
_QUOTED = re.compile(r"^\s*>(?!From )")
_DATE_OR_ADDRESS = re.compile(rf"@|{_DATE}")
MAX_SPAN = 5


@dataclass(frozen=True)
class Splitter:
    """Lines `start` up to `end` (exclusive) introduce quoted history; `kind` is
    "attribution", "headers", "separator" or "rule" (a line of underscores)."""

    start: int
    end: int
    kind: str


def first_splitter(lines: list[str], begin: int = 0) -> Splitter | None:
    """The first unquoted attribution, header block or separator at or after `begin`."""
    for i in range(begin, len(lines)):
        found = splitter_at(lines, i)
        if found is None:
            continue
        if found.kind == "attribution":
            return _wrapped_above(lines, found, begin)
        if found.kind == "rule" and not _rule_ends_answer(lines, found.end):
            continue
        return found
    return None


def _rule_ends_answer(lines: list[str], j: int) -> bool:
    """A line of underscores ends the answer when a header block follows it (Outlook) or
    no other splitter does; one with more answer and an attribution below is a divider."""
    while j < len(lines) and not lines[j].strip():
        j += 1
    following = splitter_at(lines, j) if j < len(lines) else None
    if following is not None and following.kind == "headers":
        return True
    return first_splitter(lines, j) is None


def _wrapped_above(lines: list[str], found: Splitter, begin: int) -> Splitter:
    """An attribution whose first lines did not look like one alone ("út 1. 12. 2026 v
    18:27 odesílatel Name <addr>" above "napsal:"): start it where it starts."""
    start = found.start
    tail = " ".join(line.strip() for line in lines[found.start : found.end])
    for above in range(found.start - 1, max(begin, found.start - 3) - 1, -1):
        line = lines[above].strip()
        if not line or _QUOTED.match(lines[above]):
            break
        tail = line + " " + tail
        if is_attribution(tail, quote_follows=True, wrapped=True) and _DATE_OR_ADDRESS.search(line):
            start = above
        else:
            break
    return Splitter(start, found.end, found.kind)


def splitter_at(lines: list[str], i: int) -> Splitter | None:
    """The splitter that starts at line `i`, if one does."""
    line = lines[i].strip()
    if not line or _QUOTED.match(lines[i]):
        return None
    if _SEPARATOR.match(line):
        return Splitter(i, i + 1, "separator")
    if _UNDERSCORES.match(line):
        return Splitter(i, i + 1, "rule")
    dashed = _DASHED.match(line)
    if dashed and is_attribution(dashed.group("inner"), quote_follows=True):
        return Splitter(i, i + 1, "separator")
    header = _header_block(lines, i)
    if header is not None:
        return Splitter(i, header, "headers")
    return _attribution_at(lines, i)


def _attribution_at(lines: list[str], i: int) -> Splitter | None:
    parts: list[str] = []
    for j in range(i, min(len(lines), i + MAX_SPAN)):
        part = re.sub(r"^[\s>]*", "", lines[j]).strip() if j > i else lines[j].strip()
        if (
            j > i
            and _QUOTED.match(lines[j])
            and not re.match(r"^[\s>]*(?:\S+\s+)?\S*[:：]\s*$", lines[j])
        ):
            break
        if part:
            parts.append(part)
        joined = " ".join(parts)
        if len(joined) > 400:
            break
        follows = _next_is_quoted(lines, j + 1)
        if is_attribution(joined, quote_follows=follows, wrapped=j > i):
            return Splitter(i, j + 1, "attribution")
        if j == i and not _may_wrap(joined):
            break
    return None


def is_attribution(text: str, *, quote_follows: bool = False, wrapped: bool = False) -> bool:
    """Whether `text` (one attribution, its lines joined) introduces quoted history."""
    text = text.strip()
    if not text or len(text) > 400:
        return False
    dated = re.search(rf"{_DATE}|{_TIME}", text) is not None
    addressed = _ADDRESS.search(text) is not None
    if dated and (_DATE_ADDRESS.match(text) or (not wrapped and _DATE_FIRST_ADDRESS.match(text))):
        return True
    if _LOOSE.match(text) and addressed:
        return True  # an unknown verb, but a time, an address and a colon at the end
    if not _WROTE_ANYWHERE.search(text):
        return False
    if not text.endswith((":", "：")) and not re.search(rf"(?:{_WROTE})\s*-*\s*$", text, re.I):
        return False
    match = _ATTRIBUTION.match(text)
    if match is None:
        return False
    head = match.group("head")
    opener = re.match(rf"^(?:-{{2,}}\s*)?(?:{_OPENERS})\b", head, re.I) is not None
    opener = opener or re.match(rf"^(?:{_DATE})", head) is not None
    if opener and (dated or addressed):
        return True
    if addressed and _WEAK.search(match.group(0)) is None:
        return True  # "Name <addr> wrote:", "… skrev Name <addr>:"
    # "Test Desk wrote:" with no date: only directly above a quote, and short.
    return quote_follows and len(head.split()) <= 6


def names_a_date_or_address(text: str) -> bool:
    """Whether `text` holds an address or a date: what an attribution of any form has."""
    return _DATE_OR_ADDRESS.search(text) is not None


def _may_wrap(first: str) -> bool:
    """A first line that an attribution wrapped over more lines could start with: an
    opener and a number ("On Tue, Dec 1, 2026 at 6:27 PM Carol <"), or an address before
    a verb ("Carol <carol@example.org> ezt írta (időpont: 2026. dec. 1., K,")."""
    if len(first) >= 200 or first.endswith((".", "!", "?")):
        return False
    opener = re.match(rf"^(?:-{{2,}}\s*)?(?:{_OPENERS})", first, re.I) is not None
    if opener and re.search(r"\d", first):
        return True
    return _ADDRESS.search(first) is not None and _WROTE_ANYWHERE.search(first) is not None


def _next_is_quoted(lines: list[str], j: int) -> bool:
    while j < len(lines) and not lines[j].strip():
        j += 1
    return j < len(lines) and _QUOTED.match(lines[j]) is not None


def _header_block(lines: list[str], i: int) -> int | None:
    """The end of a header block starting at line `i` (From/Sent/To/Subject), if one does."""
    first = _HEADER.match(lines[i])
    if first is None:
        return None
    name = _name(first.group("name"))
    if not _plausible_first(name, first.group("value").strip()):
        return None
    names = {name}
    end, gap = i + 1, 0
    for j in range(i + 1, min(len(lines), i + 14)):
        line = lines[j]
        if _QUOTED.match(line):
            break
        match = _HEADER.match(line)
        if match:
            names.add(_name(match.group("name")))
            end, gap = j + 1, 0
        elif not line.strip():
            gap += 1
            if gap > 1:
                break
        elif len(line) > 160 or gap:
            break
    if len(names) >= 2:
        return end
    if _FROM_NAME.match(name) and _ADDRESS.search(first.group("value")):
        return i + 1
    return None


def _plausible_first(name: str, value: str) -> bool:
    """A block starts with From (a name or an address, not a sentence) or Sent/Date (a date)."""
    if _FROM_NAME.match(name):
        sentence = len(value.split()) > 5 or value.endswith((".", "!", "?"))
        return "@" in value or not sentence
    return _SENT_NAME.match(name) is not None and re.search(r"\d", value) is not None


def _name(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip().lower())
