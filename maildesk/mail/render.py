"""Render Jinja2 mail templates and compose RFC 5322 messages. The only Jinja2 entry point.

A template is `templates/<audience>/<event>.txt.j2` with two blocks, `subject` and `body`;
an optional `<event>.html.j2` beside it adds an autoescaped HTML part. A directory named by
`[notify] templates` overrides any of them file by file.
"""

from __future__ import annotations

import importlib.resources
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.charset import QP, Charset
from email.encoders import encode_base64
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
)

from maildesk.mail.address import ascii_address
from maildesk.mail.compiled import compiled_templates
from maildesk.mail.words import when, words

# Set on every message the desk sends; mail that comes back with our own marker is a loop.
LOOP_HEADER = "X-Maildesk-Loop"


_NEWLINES = re.compile(r"[\r\n\t\x00-\x08\x0b\x0c\x0e-\x1f]+")

# Every template maildesk uses, with the context it gets; rendered at load to catch errors.
# Each gets desk, ticket, message and recipient, plus the extra variables listed here.
EXTRAS: Mapping[str, tuple[str, ...]] = {
    "requester/agent_reply": ("agent",),
    "requester/ticket_resolved": ("why",),
    "requester/ticket_merged": ("merged_into",),
    "requester/pending_reminder": ("resolve_after",),
    "agent/requester_reply": ("flags",),
    "agent/ticket_reopened": ("flags",),
    "agent/ticket_assigned": ("assigned_by",),
    "agent/command_error": ("errors", "commands"),
    "agent/command_receipt": ("changes", "commands"),
    "agent/sla_warning": ("sla",),
    "agent/sla_breach": ("sla",),
    "requester/problem_resolved": ("problem",),
    "agent/problem_detected": ("problem",),
    "agent/problem_linked": ("problem",),
    "agent/reply_not_relayed": ("why",),
    "agent/note_added": ("noted_by",),
    "requester/status": ("tickets", "resolved"),
    "agent/survey_bad": ("csat",),
    "agent/change_starting": ("change",),
    "agent/change_window_passed": ("change",),
    **dict.fromkeys(("subscriber/broadcast", "subscriber/all_clear"), ("broadcast",)),
    "requester/broadcast_update": ("broadcast",),
    "requester/catalog": ("items",),
    "requester/request_incomplete": ("item", "missing"),
    **{f"approver/approval_{e}": ("item", "approval") for e in ("request", "reminder")},
    **{f"requester/request_{o}": ("item", "reason") for o in ("approved", "rejected", "expired")},
}
# The templates that get nothing beyond desk, ticket, message and recipient; then the rest.
TEMPLATES = (
    "requester/ticket_created",
    "agent/ticket_created",
    "agent/alert_recovered",
    "requester/closed_by_you",
    "requester/survey",
    *EXTRAS,
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


def package_templates_dir() -> Path:
    return Path(str(importlib.resources.files("maildesk.templates")))


class Templates:
    """The template set: package defaults, overridden file by file from `[notify] templates`,
    and for a queue with its own `templates` directory, from that one first."""

    def __init__(
        self,
        override_dir: Path | None = None,
        queue_dirs: Mapping[str, Path] | None = None,
        *,
        timezone: str = "UTC",
    ) -> None:
        """`timezone`: the desk's, in which the `when` filter writes instants."""
        base = [FileSystemLoader(str(override_dir))] if override_dir else []
        base.append(FileSystemLoader(str(package_templates_dir())))
        self._queue_dirs = dict(queue_dirs or {})
        self._envs: dict[str | None, tuple[Environment, Environment]] = {
            None: _environment(base, timezone)
        }
        for queue, directory in self._queue_dirs.items():
            loaders = [FileSystemLoader(str(directory)), *base]
            self._envs[queue] = _environment(loaders, timezone)

    def render(self, name: str, context: Mapping[str, Any], queue: str | None = None) -> Rendered:
        """Render `<name>.txt.j2` (and `<name>.html.j2` if present) for the queue's set."""
        text_env, html_env = self._envs.get(queue) or self._envs[None]
        template = text_env.get_template(f"{name}.txt.j2")
        ctx = template.new_context(dict(context))
        subject = "".join(template.blocks["subject"](ctx)) if "subject" in template.blocks else ""
        body = "".join(template.blocks["body"](ctx)) if "body" in template.blocks else ""
        html: str | None = None
        try:
            html_template = html_env.get_template(f"{name}.html.j2")
        except TemplateNotFound:
            pass
        else:
            # The HTML file has the same two blocks; only its body is the HTML part.
            html_ctx = html_template.new_context(dict(context))
            html = (
                "".join(html_template.blocks["body"](html_ctx))
                if "body" in html_template.blocks
                else html_template.render(dict(context))
            )
        return Rendered(subject=one_line(subject), text=body.strip() + "\n", html=html)

    def check(
        self,
        sample: Mapping[str, Any],
        extras: Mapping[str, Any],
        only: Sequence[str] = TEMPLATES,
    ) -> list[str]:
        """Render templates (default: every one maildesk uses) with a sample context, each
        with just the extra variables it gets (EXTRAS), so a template using a variable it
        will not have fails here and not when mail arrives; for a queue's own directory,
        the ones it overrides. Returns the problems found."""
        problems: list[str] = []
        for name in only:
            ctx = {**sample, **{k: extras[k] for k in EXTRAS.get(name, ())}}
            if problem := self._check_one(name, ctx, None):
                problems.append(problem)
            for queue, directory in self._queue_dirs.items():
                overridden = any((directory / f"{name}.{k}.j2").exists() for k in ("txt", "html"))
                if overridden and (problem := self._check_one(name, ctx, queue)):
                    problems.append(f"queue {queue!r}: {problem}")
        return problems

    def _check_one(self, name: str, sample: Mapping[str, Any], queue: str | None) -> str | None:
        try:
            self.render(name, sample, queue)
        except TemplateNotFound:
            return f"no template {name}.txt.j2 (shipped or in [notify] templates)"
        except (TemplateError, KeyError, TypeError, ValueError) as exc:
            return f"{name}: {type(exc).__name__}: {exc}"
        return None


def render_page(name: str, context: Mapping[str, Any], timezone: str = "UTC") -> str:
    """An HTML page from the package's `templates/<name>.html.j2`, autoescaped (a report)."""
    env = Environment(
        loader=FileSystemLoader(str(package_templates_dir())),
        undefined=StrictUndefined,
        autoescape=True,
    )
    _filters(env, timezone)
    return env.get_template(f"{name}.html.j2").render(dict(context))


def _environment(loaders: list[FileSystemLoader], timezone: str) -> tuple[Environment, Environment]:
    """A text environment (no escaping, strict) and its autoescaping HTML twin."""
    text = Environment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        bytecode_cache=compiled_templates(),
    )
    text.globals["notice_marker"] = notice_marker
    _filters(text, timezone)
    return text, text.overlay(autoescape=True)


def _filters(env: Environment, timezone: str) -> None:
    """`when`: an instant in the desk's timezone (`Tue 1 Dec 19:10 (Europe/Berlin)`);
    `words`: a list, None or bytes in words (maildesk.mail.words)."""
    env.filters["when"] = lambda value: when(value, timezone)
    env.filters["words"] = words


def one_line(value: str) -> str:
    """A header-safe value: control characters and line breaks become single spaces."""
    return _NEWLINES.sub(" ", value).strip()


def mint_message_id(domain: str, ref: str) -> str:
    """A fresh Message-ID that names the ticket, e.g. <3f…9a.MD-42@example.com>.

    128 bits from `secrets`: Message-IDs tie mail to threads, so they must not be guessable
    (email.utils.make_msgid draws on Python's `random`, which can be predicted from its
    output).
    """
    return f"<{secrets.token_hex(16)}.{ref}@{domain}>"


def notice_marker(ref: str) -> str:
    """The unique last line of an agent notice (templates call it as `notice_marker`): a
    reply is cut there, and a reply still carrying one quotes a notice (never relayed)."""
    return f"-- maildesk notice {ref} {secrets.token_hex(4)} --"


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """Headers of one outgoing message."""

    from_name: str
    from_addr: str
    to: Sequence[str]
    cc: Sequence[str] = ()
    subject: str
    message_id: str
    date: datetime
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    reply_to: str | None = None
    auto_submitted: str | None = None
    precedence: str | None = None  # "bulk": mail to many, which no auto-reply should answer
    loop_marker: str | None = None
    ticket_ref: str | None = None


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    content: bytes
    # An image the HTML part shows (`<img src="cid:...">`): sent beside it in a
    # multipart/related under this Content-ID (without angle brackets). Without an HTML
    # part it goes as a file like any other.
    content_id: str | None = None


# Text parts in UTF-8, quoted-printable: readable in a raw view, safe for any transport.
_WIRE = compat32.clone(linesep="\r\n")  # CRLF line ends, as SMTP wants them
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def _header_text(value: str) -> str | Header:
    """A free-text header value: plain when ASCII and foldable at spaces into lines SMTP
    takes (under 998 characters), RFC 2047 encoded-words (which split anywhere) otherwise."""
    value = one_line(value)
    foldable = value.isascii() and all(len(word) < 900 for word in value.split())
    return value if foldable else Header(value, "utf-8")


def _address_list(addresses: Sequence[str]) -> str:
    """An address header's value: each address in ASCII where it has an ASCII form (the
    domain in IDNA A-labels, as any server takes it), else in raw UTF-8 (RFC 6532), which
    only a server offering SMTPUTF8 takes (the transport checks). Never encoded-words: RFC
    2047 forbids them in an address."""
    forms = [ascii_address(a) or a for a in (one_line(a) for a in addresses)]
    value = ", ".join(forms)
    return value if value.isascii() else _raw_utf8(forms)


def _mailbox(name: str, address: str) -> str:
    """`Name <address>`: the name in encoded-words where it needs them, the address as in
    _address_list."""
    form = ascii_address(one_line(address)) or one_line(address)
    if form.isascii():
        return formataddr((name, form), charset="utf-8")
    # formataddr takes ASCII addresses only: it formats the name beside a stand-in.
    head, angle, _ = formataddr((name, _STAND_IN), charset="utf-8").rpartition(f"<{_STAND_IN}>")
    return _raw_utf8([f"{head}<{form}>" if angle else form])


_STAND_IN = "x@invalid"


def _raw_utf8(items: Sequence[str]) -> str:
    """Items of a header written as raw UTF-8 bytes, folded between items so that lines
    stay near 78 bytes (a single long item keeps its line).

    compat32 writes a value holding surrogate escapes byte for byte (its 8bit cte_type),
    so the UTF-8 goes out as it is; folding is ours, at the commas."""
    lines: list[str] = []
    for item in items:
        if lines and len((lines[-1] + item).encode()) > 72:  # room for "To: " and ", "
            lines[-1] += ","
            lines.append(item)
        elif lines:
            lines[-1] += ", " + item
        else:
            lines.append(item)
    return "\r\n ".join(lines).encode("utf-8").decode("ascii", "surrogateescape")


def compose(
    env: Envelope, rendered: Rendered, attachments: Sequence[OutgoingAttachment] = ()
) -> bytes:
    """Build the message bytes: text part, optional HTML alternative (with the images it
    shows beside it), threading headers, attachments.

    Built with the standard library's compat32 MIME classes, which are several times
    faster than EmailMessage with a modern policy; every free-text value goes through
    one_line (no CR, LF or controls) and RFC 2047 encoding, so no header can be injected.
    """
    shown = [a for a in attachments if a.content_id and rendered.html]
    files = [a for a in attachments if not (a.content_id and rendered.html)]
    text: Message = MIMEText(rendered.text, "plain", _UTF8_QP)  # type: ignore[arg-type]
    body: Message = text
    if rendered.html:
        html: Message = MIMEText(rendered.html, "html", _UTF8_QP)  # type: ignore[arg-type]
        if shown:
            # RFC 2387: the HTML first, then the images its cid: links name.
            related = MIMEMultipart("related", _boundary(), type="text/html")
            related.attach(html)
            for a in shown:
                related.attach(_file_part(a, inline=True))
            html = related
        body = MIMEMultipart("alternative", _boundary())
        body.attach(text)
        body.attach(html)
    if files:
        mixed = MIMEMultipart("mixed", _boundary())
        mixed.attach(body)
        for a in files:
            mixed.attach(_file_part(a, inline=False))
        body = mixed
    msg = body
    name = one_line(env.from_name)[:200]
    msg["From"] = _mailbox(name, env.from_addr)
    msg["To"] = _address_list(env.to)
    if env.cc:
        msg["Cc"] = _address_list(env.cc)
    msg["Subject"] = _header_text(env.subject)  # type: ignore[assignment]  # str or Header
    msg["Date"] = format_datetime(env.date)
    msg["Message-ID"] = env.message_id
    if env.in_reply_to:
        msg["In-Reply-To"] = env.in_reply_to
    if env.references:
        msg["References"] = " ".join(env.references)
    if env.reply_to:
        msg["Reply-To"] = _address_list([env.reply_to])
    if env.auto_submitted:
        msg["Auto-Submitted"] = env.auto_submitted
        # Ask Exchange and friends not to answer our automatic mail with their own.
        msg["X-Auto-Response-Suppress"] = "All"
    if env.precedence:
        msg["Precedence"] = env.precedence
    if env.loop_marker:
        msg[LOOP_HEADER] = env.loop_marker
    if env.ticket_ref:
        msg["X-Maildesk-Ticket"] = env.ticket_ref
    return msg.as_bytes(policy=_WIRE)


def _boundary() -> str:
    """A multipart boundary no part can contain: "=_" never starts a quoted-printable or
    base64 line, and 128 random bits never recur in a 7- or 8-bit part. Given, it spares
    the generator its search of every part's text for the one it would make up (a tenth of
    composing a notice that carries files)."""
    return f"=_md_{secrets.token_hex(16)}"


def _file_part(a: OutgoingAttachment, *, inline: bool) -> Message:
    """One file as a base64 leaf: an attachment, or an inline image with its Content-ID."""
    maintype, _, subtype = a.content_type.partition("/")
    # Container types cannot be base64 leaves (RFC 2046): send those bytes as a file.
    if maintype in ("multipart", "message") or not subtype or not a.content_type.isascii():
        maintype, subtype = "application", "octet-stream"
    part = MIMEBase(maintype, subtype)
    part.set_payload(a.content)
    encode_base64(part)
    disposition = "inline" if inline else "attachment"
    part.add_header(
        "Content-Disposition", disposition, filename=("utf-8", "", one_line(a.filename))
    )
    if inline and a.content_id:
        part["Content-ID"] = f"<{one_line(a.content_id).strip('<>')}>"
    return part
