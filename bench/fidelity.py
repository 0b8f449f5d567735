"""Fidelity: does maildesk read each message the way its sender wrote it?

    python bench/fidelity.py                          # tests/data/fidelity and tests/data/realworld
    python bench/fidelity.py FOLDER ... [--json] [--all]

For every .eml in the folders, maildesk's reading (maildesk.parse.parse_message) is compared
with an independent one, Python's email package with policy.default: subject, From address,
body text (get_body, plain before HTML) and attachments (iter_attachments, into nested
multiparts). Where a NAME.expected.json sits beside NAME.eml (or names its file with "eml",
a path relative to the JSON), that expectation is the truth and the standard library only a
second opinion. Each difference is classified:

- garbled: U+FFFD or mojibake (text in one charset read as cp1252, "Ã©", "â€™", "ÎÒ°Ñ")
  that the reference does not have, or a string the expectation forbids;
- emptied: maildesk's body is empty while the reference (or the expectation) has text;
- lost attachment: a file the reference or the expectation lists is missing from maildesk's;
- refused: maildesk raised instead of reading the message;
- wrong: another miss against the expectation (subject, From, a snippet, a file listed that
  is body text);
- explained: maildesk differs from the standard library and is right (each rule says why);
- differs: a difference no rule explains, for a person to look at (not a failure).

Prints a table of the messages that differ and a summary line; exits 1 when any message is
garbled, emptied, refused, lost an attachment or missed its expectation. Importable by path
(tests/parse/test_fidelity.py runs the same comparison on the corpus).
"""

from __future__ import annotations

import argparse
import email
import json
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FOLDERS = (REPO / "tests" / "data" / "fidelity", REPO / "tests" / "data" / "realworld")
# Worst first: a message's status is the worst kind among its findings.
KINDS = ("refused", "garbled", "emptied", "lost attachment", "wrong", "differs", "explained")
FAILING = frozenset(KINDS[:5])
# The machine-readable parts of a report (RFC 6522): data about a message, not files.
REPORT_PARTS = frozenset(
    {
        "message/delivery-status",
        "message/disposition-notification",
        "message/feedback-report",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-delivery-status",
        "message/global-disposition-notification",
    }
)
_UU_BLOCK = re.compile(r"^begin [0-7]{3,4} (\S[^\n]*)\n.*?^end[ \t]*$", re.M | re.S)
_FIELD = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
# cp1252's letters and punctuation above ASCII: what bytes of another charset turn into.
_HIGH = re.compile(
    "[\u00a0-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]{2,}"
)
_CJK = ("CJK", "IDEOGRAPHIC", "FULLWIDTH", "HIRAGANA", "KATAKANA")
_SCRIPTS = {  # charsets text is often misread from -> words in the names of their letters
    "utf-8": (),
    "gb18030": _CJK,
    "big5": _CJK,
    "shift_jis": _CJK,
    "euc-kr": ("HANGUL", *_CJK),
    "koi8-r": ("CYRILLIC",),
    "windows-1251": ("CYRILLIC",),
}


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    text: str = ""  # the start of a text part's text, to tell a body part listed as a file


@dataclass(frozen=True)
class Reading:
    subject: str
    from_addr: str
    body: str
    attachments: tuple[Attachment, ...]
    notes: tuple[str, ...] = ()  # what this reader could not do, for the explanations


@dataclass(frozen=True)
class Finding:
    kind: str
    where: str  # subject, from, body, attachments or message
    detail: str


@dataclass
class Verdict:
    name: str
    path: str
    findings: list[Finding] = field(default_factory=list)
    maildesk: Reading | None = None

    @property
    def status(self) -> str:
        kinds = {f.kind for f in self.findings}
        return next((k for k in KINDS if k in kinds), "ok")


@dataclass(frozen=True)
class Sample:
    name: str
    path: Path
    expected: dict[str, Any] | None


def samples(folders: Iterable[Path]) -> list[Sample]:
    """Every .eml in the folders once, with the expectation that names it (if any)."""
    expected: dict[Path, dict[str, Any]] = {}
    found: dict[Path, None] = {}
    for folder in folders:
        for spec in sorted(folder.glob("*.expected.json")):
            data = json.loads(spec.read_text(encoding="utf-8"))
            target = spec.parent / data.get("eml", spec.name.replace(".expected.json", ".eml"))
            expected[target.resolve()] = data
            found[target.resolve()] = None
        found.update(dict.fromkeys(p.resolve() for p in sorted(folder.glob("*.eml"))))
    return [Sample(p.name, p, expected.get(p)) for p in found]


def maildesk_reading(raw: bytes) -> Reading:
    """What maildesk's parser reads (raises what it raises)."""
    from maildesk.parse import parse_message

    msg = parse_message(raw)
    files = tuple(Attachment(a.filename, a.content_type) for a in msg.attachments)
    return Reading(msg.subject, msg.from_addr, msg.body_text, files)


def reference_reading(raw: bytes) -> Reading:
    """Python's email package with policy.default, read as its documentation says."""
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    notes: list[str] = []
    first = raw.split(b"\n", 1)[0]
    if not (_FIELD.match(first) or first.startswith(b"From ")):
        notes.append("header block cut")  # the feedparser reads no header at all
    if any(type(d).__name__ == "MissingHeaderBodySeparatorDefect" for d in msg.defects):
        notes.append("header block cut")
    subject = _guard(lambda: str(msg["subject"] or ""), "", notes, "subject unreadable")
    addresses = _guard(lambda: msg["from"].addresses, (), notes, "from unreadable")
    from_addr = _unescape(addresses[0].addr_spec) if addresses else ""
    part = msg.get_body(("plain", "html"))
    body = _part_text(part, notes) if isinstance(part, EmailMessage) else ""
    files: list[Attachment] = []
    _collect(msg, files, notes)
    for alternative in (p for p in msg.walk() if p.get_content_type() == "multipart/alternative"):
        for sub in alternative.iter_parts():
            if sub.get_content_maintype() != "multipart":
                notes.append(f"alternative {sub.get_content_type()}")
    return Reading(_squash(subject), from_addr.lower(), body, tuple(files), tuple(notes))


def _unescape(text: str) -> str:
    """Raw 8-bit bytes the email package kept as surrogates, read as UTF-8 (RFC 6532)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _guard(fn: Any, default: Any, notes: list[str], note: str) -> Any:
    try:
        return fn()
    except Exception:  # the email package raises many kinds on broken input
        notes.append(note)
        return default


def _part_text(part: EmailMessage, notes: list[str]) -> str:
    try:
        text = part.get_content()
    except Exception:  # an unknown charset (LookupError) or a broken part
        notes.append(f"could not decode its {part.get_content_charset()} text")
        data = part.get_payload(decode=True)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
    if not isinstance(text, str):
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else ""
    if "\ufffd" in text:
        notes.append(f"U+FFFD in its text (charset {part.get_content_charset() or 'none'})")
    return html_text(text) if part.get_content_subtype() == "html" else text.strip()


def _collect(part: EmailMessage, out: list[Attachment], notes: list[str]) -> None:
    """The attachments of a part: iter_attachments, and into the multiparts it yields."""
    ctype = part.get_content_type()
    if ctype != "message/rfc822" and part.get_content_maintype() not in ("multipart", "text"):
        out.append(Attachment(part.get_filename() or "", ctype))
        return  # the whole message is one file (a message/partial, an opaque .p7m)
    for sub in part.iter_attachments():
        assert isinstance(sub, EmailMessage)
        if sub.get_content_maintype() == "multipart":
            _collect(sub, out, notes)
            continue
        text = ""
        if sub.get_content_maintype() == "text":
            text = _squash(_guard(lambda s=sub: str(s.get_content()), "", notes, "text unreadable"))
        name = _guard(lambda s=sub: s.get_filename() or "", "", notes, "name unreadable")
        out.append(Attachment(name, sub.get_content_type(), text[:200]))


class _HTMLText(HTMLParser):
    SKIP = frozenset({"script", "style", "title"})
    BREAK = frozenset({"br", "p", "div", "li", "tr", "table", "h1", "h2", "h3", "blockquote"})

    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif tag in self.BREAK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def html_text(html: str) -> str:
    """The text of an HTML body (the standard library's parser, not the one maildesk uses)."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return "\n".join(line.strip() for line in "".join(parser.out).splitlines()).strip()


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def suspicious(text: str) -> set[str]:
    """U+FFFD, and every run of cp1252 letters that is really text in another charset."""
    found = {"\ufffd"} if "\ufffd" in text else set()
    for run in _HIGH.findall(text):
        try:
            data = run.encode("cp1252")
        except UnicodeEncodeError:
            continue
        if any(_reads_as(data, charset, script) for charset, script in _SCRIPTS.items()):
            found.add(run)
    return found


def _reads_as(data: bytes, charset: str, script: tuple[str, ...]) -> bool:
    decoded = data.decode(charset, "replace")
    if not script:  # UTF-8 read as cp1252 is always longer than the text it was
        good = [c for c in decoded if ord(c) > 127 and c != "\ufffd"]
        return len(decoded) < len(data) and len(good) >= 0.7 * len(decoded)
    if len(data) < 4:
        return False  # two or three accented letters in a row are real words too
    good = [c for c in decoded if any(w in unicodedata.name(c, "") for w in script)]
    return len(good) >= 0.7 * len(decoded)


def judge(
    md: Reading | Exception, ref: Reading | Exception, expected: dict[str, Any] | None, raw: bytes
) -> list[Finding]:
    """Every difference between maildesk's reading, the expectation and the reference."""
    if isinstance(md, Exception):
        return [Finding("refused", "message", f"{type(md).__name__}: {md}")]
    out = against_expected(md, expected) if expected is not None else []
    if isinstance(ref, Reading):
        out += against_reference(md, ref, raw)
    else:
        why = f"the standard library could not read it ({type(ref).__name__}: {ref})"
        out.append(Finding("explained" if expected else "differs", "message", why))
    return out


def against_expected(md: Reading, exp: dict[str, Any]) -> list[Finding]:
    """The expectation is the truth: subject, From, snippets, forbidden strings, files."""
    out = []
    if "subject" in exp and _squash(md.subject) != _squash(exp["subject"]):
        kind = "garbled" if suspicious(md.subject) - suspicious(exp["subject"]) else "wrong"
        out.append(Finding(kind, "subject", f"{md.subject!r}, expected {exp['subject']!r}"))
    if "from" in exp and _squash(md.from_addr) != _squash(exp["from"]).lower():
        out.append(Finding("wrong", "from", f"{md.from_addr!r}, expected {exp['from']!r}"))
    body = _squash(md.body)
    missing = [s for s in exp.get("body_contains", []) if _squash(s) not in body]
    if missing:
        wanted = " ".join(missing)
        kind = "emptied" if not body else "wrong"
        if body and suspicious(md.body) - suspicious(wanted):
            kind = "garbled"
        out.append(Finding(kind, "body", f"missing {missing!r}; the body is {body[:120]!r}"))
    for bad in exp.get("body_excludes", []):
        if bad in md.body:
            out.append(Finding("garbled", "body", f"{bad!r} is in the body: {body[:120]!r}"))
    out += _expected_files(md, exp)
    return out


def _expected_files(md: Reading, exp: dict[str, Any]) -> list[Finding]:
    names = [a.name for a in md.attachments]
    types = [a.content_type for a in md.attachments]
    lost = [n for n in exp.get("attachments", []) if n not in names]
    lost += [
        f"a name matching {p!r}"
        for p in exp.get("attachments_matching", [])
        if not any(re.search(p, n) for n in names)
    ]
    lost += [f"a {t} part" for t in exp.get("attachment_types", []) if t not in types]
    out = [Finding("lost attachment", "attachments", f"{x} is not among {names}") for x in lost]
    listed = [n for n in exp.get("attachments_absent", []) if n in names]
    if exp.get("no_other_attachments"):
        listed += [n for n in names if n not in exp.get("attachments", []) and n not in listed]
    out += [
        Finding("wrong", "attachments", f"{n} is listed as a file; expected body text or nothing")
        for n in listed
    ]
    return out


def against_reference(md: Reading, ref: Reading, raw: bytes) -> list[Finding]:
    """The standard library's reading as a second opinion, with the rules where it is wrong."""
    out = []
    for where, mine, theirs in (
        ("subject", md.subject, ref.subject),
        ("from", md.from_addr, ref.from_addr),
    ):
        if _squash(mine).lower() != _squash(theirs).lower():
            out.append(_header_difference(where, mine, theirs, ref))
    for where, mine, theirs in (("subject", md.subject, ref.subject), ("body", md.body, ref.body)):
        extra = suspicious(mine) - suspicious(theirs)
        if extra:
            shown = ", ".join(repr(s) for s in sorted(extra)[:3])
            out.append(Finding("garbled", where, f"{shown}: not in the reference reading"))
    return out + _body_difference(md, ref) + _file_differences(md, ref, raw)


def _header_difference(where: str, mine: str, theirs: str, ref: Reading) -> Finding:
    detail = f"maildesk {mine!r}, the reference {theirs!r}"
    if "header block cut" in ref.notes:
        why = (
            "the standard library ends the header block at the first line that is not "
            "'Name:' (a byte-order mark, an indented first line, 'Subject :'), RFC 5322 4.5 "
            "obs-syntax that MTAs accept"
        )
    elif "\ufffd" in theirs:
        why = (
            "the standard library could not decode it (U+FFFD): raw 8-bit bytes that are not "
            "UTF-8, or an encoded-word in a charset it lacks or that is not the one declared"
        )
    elif "\x00" in theirs and _squash(theirs.replace("\x00", "")) == _squash(mine):
        why = "maildesk removes NUL characters (no text column or UTF-8 sink takes them)"
    elif where == "subject" and _squash(mine).replace(" ", "") == _squash(theirs).replace(" ", ""):
        return Finding("wrong", where, f"{detail}: a space between encoded-words (RFC 2047 6.2)")
    else:
        return Finding("differs", where, detail)
    return Finding("explained", where, f"{detail}: {why}")


def _body_difference(md: Reading, ref: Reading) -> list[Finding]:
    ref_text = _UU_BLOCK.sub("", ref.body)
    if not md.body.strip():
        if ref_text.strip():
            return [
                Finding("emptied", "body", f"empty; the reference has {_squash(ref_text)[:120]!r}")
            ]
        return []
    words = re.findall(r"\w{3,}", _squash(ref_text))
    body = _squash(md.body)
    missing = [w for w in words if w not in body]
    if not words or len(missing) <= 0.1 * len(words):
        return []
    detail = f"{len(missing)} of {len(words)} words of the reference are not in it ({missing[:4]})"
    if "header block cut" in ref.notes:
        return [Finding("explained", "body", f"{detail}: the reference reads headers as body")]
    if any(n.startswith(("U+FFFD", "could not decode")) for n in ref.notes):
        why = next(n for n in ref.notes if n.startswith(("U+FFFD", "could not decode")))
        return [
            Finding("explained", "body", f"{detail}: the reference could not decode it ({why})")
        ]
    return [Finding("differs", "body", detail)]


def _file_differences(md: Reading, ref: Reading, raw: bytes) -> list[Finding]:
    unused = list(md.attachments)
    out = []
    for att in ref.attachments:
        match = _match(att, unused, ref)
        if match is not None:
            unused.remove(match)
            continue
        why = _why_not_listed(att, md)
        kind, detail = ("explained", f": {why}") if why else ("lost attachment", "")
        out.append(
            Finding(
                kind,
                "attachments",
                f"{_label(att)} is not among maildesk's {[a.name for a in md.attachments]}{detail}",
            )
        )
    for att in unused:
        why = _why_extra(att, ref, raw)
        out.append(
            Finding(
                "explained" if why else "differs",
                "attachments",
                f"maildesk lists {_label(att)}, the reference does not"
                + (f": {why}" if why else ""),
            )
        )
    return out


def _label(att: Attachment) -> str:
    return f"{att.name or '(no name)'} ({att.content_type})"


def _match(att: Attachment, candidates: Sequence[Attachment], ref: Reading) -> Attachment | None:
    from maildesk.parse import sanitise_filename

    if att.name:
        names = {
            att.name,
            unicodedata.normalize("NFC", att.name),
            sanitise_filename(att.name, att.content_type, 0),
        }
        found = next((c for c in candidates if c.name in names), None)
        if found is not None:
            return found
    claimed = {a.name for a in ref.attachments if a.name}
    return next(
        (c for c in candidates if c.content_type == att.content_type and c.name not in claimed),
        None,
    )


def _why_not_listed(att: Attachment, md: Reading) -> str | None:
    if att.content_type in REPORT_PARTS:
        return (
            "the machine-readable part of a report (RFC 6522), data about another message "
            "that maildesk's bounce and receipt handling reads, not a file"
        )
    if att.content_type.startswith("text/") and not att.text:
        return "an empty text part: no text to show and no file to keep"
    if att.text and _squash(att.text)[:80] in _squash(md.body):
        return "a text part that maildesk reads as body text (its text is in the body)"
    return None


def _why_extra(att: Attachment, ref: Reading, raw: bytes) -> str | None:
    types = {a.content_type for a in ref.attachments}
    names = {a.name.lower() for a in ref.attachments}
    uu = {m.strip() for m in _UU_BLOCK.findall(raw.decode("latin-1").replace("\r\n", "\n"))}
    if att.name in uu:
        return "uuencoded inside the text; maildesk takes it out of the text as a file"
    if "application/ms-tnef" in types or "winmail.dat" in names:
        return "unpacked from the TNEF winmail.dat (the standard library lists only the .dat)"
    if types & {"application/pkcs7-mime", "application/x-pkcs7-mime"}:
        return "from inside the opaque S/MIME signature (the standard library lists the .p7m)"
    if f"alternative {att.content_type}" in ref.notes:
        return (
            f"an alternative of the body in {att.content_type}: iter_attachments never lists the "
            "parts of a multipart/alternative"
        )
    if "message/rfc822" in types:
        return "a file of a forwarded message (the standard library lists the outer parts only)"
    return None


def check(sample: Sample) -> Verdict:
    """One message through both readings and the expectation."""
    raw = sample.path.read_bytes()
    verdict = Verdict(sample.name, str(sample.path))
    md: Reading | Exception
    ref: Reading | Exception
    try:
        md = verdict.maildesk = maildesk_reading(raw)
    except Exception as exc:  # the verdict names it
        md = exc
    try:
        ref = reference_reading(raw)
    except Exception as exc:  # the verdict names it
        ref = exc
    verdict.findings = judge(md, ref, sample.expected, raw)
    return verdict


def summary(verdicts: Sequence[Verdict]) -> dict[str, int]:
    counts = {k: sum(1 for v in verdicts if v.status == k) for k in ("ok", *KINDS)}
    return {"messages": len(verdicts), **counts}


def summary_line(counts: dict[str, int]) -> str:
    failing = ", ".join(f"{counts[k]} {k}" for k in KINDS[:5])
    return (
        f"fidelity: {counts['messages']} messages, {counts['ok']} ok, "
        f"{counts['explained']} explained, {counts['differs']} differ; failing: {failing}"
    )


def report(verdicts: Sequence[Verdict], folders: Sequence[Path]) -> dict[str, Any]:
    return {
        "benchmark": "fidelity",
        "folders": [str(f) for f in folders],
        "results": [
            {
                "message": v.name,
                "path": v.path,
                "status": v.status,
                "findings": [asdict(f) for f in v.findings],
                "maildesk": asdict(v.maildesk) if v.maildesk else None,
            }
            for v in verdicts
        ],
        "summary": summary(verdicts),
    }


def print_table(verdicts: Sequence[Verdict], show_all: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "message",
        "status",
        "why",
        title="fidelity: maildesk vs expectation and Python's email (policy.default)",
        show_lines=True,
    )
    for v in verdicts:
        if v.findings or show_all:
            why = "\n".join(f"{f.kind}, {f.where}: {f.detail}" for f in v.findings)
            style = "red" if v.status in FAILING else None
            table.add_row(v.name, v.status, why, style=style)
    console = Console(width=max(160, Console().width))
    console.print(table)
    console.print(summary_line(summary(verdicts)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=list(DEFAULT_FOLDERS))
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.add_argument("--all", action="store_true", help="list messages without findings too")
    args = parser.parse_args(argv)
    verdicts = [check(s) for s in samples(args.folders)]
    if args.json:
        print(json.dumps(report(verdicts, args.folders), indent=2, ensure_ascii=False))
    else:
        print_table(verdicts, args.all)
    return 1 if any(v.status in FAILING for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
