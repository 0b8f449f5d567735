"""Render Jinja2 mail templates and compose RFC 5322 messages. The only Jinja2 entry point.

A template is `templates/<audience>/<event>.txt.j2` with two blocks, `subject` and `body`;
an optional `<event>.html.j2` beside it adds an autoescaped HTML part. A directory named by
`[notify] templates` overrides any of them file by file.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
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

from maildesk.guard import LOOP_HEADER

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
}
TEMPLATES = (
    "requester/ticket_created",
    "requester/agent_reply",
    "requester/ticket_resolved",
    "requester/ticket_merged",
    "agent/ticket_created",
    "agent/requester_reply",
    "agent/ticket_reopened",
    "agent/ticket_assigned",
    "agent/command_error",
    "agent/command_receipt",
    "agent/sla_warning",
    "agent/sla_breach",
    "requester/pending_reminder",
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
        self, override_dir: Path | None = None, queue_dirs: Mapping[str, Path] | None = None
    ) -> None:
        base = [FileSystemLoader(str(override_dir))] if override_dir else []
        base.append(FileSystemLoader(str(package_templates_dir())))
        self._queue_dirs = dict(queue_dirs or {})
        self._envs: dict[str | None, tuple[Environment, Environment]] = {None: _environment(base)}
        for queue, directory in self._queue_dirs.items():
            self._envs[queue] = _environment([FileSystemLoader(str(directory)), *base])

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


def _environment(loaders: list[FileSystemLoader]) -> tuple[Environment, Environment]:
    """A text environment (no escaping, strict) and its autoescaping HTML twin."""
    text = Environment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    return text, text.overlay(autoescape=True)


def one_line(value: str) -> str:
    """A header-safe value: control characters and line breaks become single spaces."""
    return _NEWLINES.sub(" ", value).strip()


def mint_message_id(domain: str, ref: str) -> str:
    """A fresh Message-ID that names the ticket, e.g. <...MD-42@example.com>."""
    return make_msgid(idstring=ref, domain=domain)


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
    loop_marker: str | None = None
    ticket_ref: str | None = None


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    content: bytes


def compose(
    env: Envelope, rendered: Rendered, attachments: Sequence[OutgoingAttachment] = ()
) -> bytes:
    """Build the message bytes: text part, optional HTML alternative, threading headers,
    attachments (kept from an agent's reply)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(display_name=one_line(env.from_name), addr_spec=env.from_addr)
    msg["To"] = ", ".join(env.to)
    if env.cc:
        msg["Cc"] = ", ".join(env.cc)
    msg["Subject"] = one_line(env.subject)
    msg["Date"] = format_datetime(env.date)
    msg["Message-ID"] = env.message_id
    if env.in_reply_to:
        msg["In-Reply-To"] = env.in_reply_to
    if env.references:
        msg["References"] = " ".join(env.references)
    if env.reply_to:
        msg["Reply-To"] = env.reply_to
    if env.auto_submitted:
        msg["Auto-Submitted"] = env.auto_submitted
        # Ask Exchange and friends not to answer our automatic mail with their own.
        msg["X-Auto-Response-Suppress"] = "All"
    if env.loop_marker:
        msg[LOOP_HEADER] = env.loop_marker
    if env.ticket_ref:
        msg["X-Maildesk-Ticket"] = env.ticket_ref
    msg.set_content(rendered.text, cte="quoted-printable")
    if rendered.html:
        msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    for a in attachments:
        maintype, _, subtype = a.content_type.partition("/")
        # Container types cannot be base64 leaves (RFC 2046): send those bytes as a file.
        if maintype in ("multipart", "message") or not subtype:
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(
            a.content, maintype=maintype, subtype=subtype, filename=one_line(a.filename)
        )
    return msg.as_bytes()
