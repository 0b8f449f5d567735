"""Helpers for conversations between requesters and agents over real SMTP."""

from __future__ import annotations

import os
import shlex
import subprocess
import textwrap
import uuid
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from math import inf
from pathlib import Path
from string import Template
from typing import Any

from tests.conftest import Desk, mail, require_tool, wait_until

REPLIES = Path(__file__).parent / "data" / "replies"
ALICE = "alice@example.com"
CAROL = "carol@example.org"


def received(desk: Desk, address: str) -> list[EmailMessage]:
    """Every message the smarthost took for `address` (an envelope recipient: To or Cc)."""
    with desk.sink.lock:
        raws = [raw for _, rcpts, raw in desk.sink.messages if address in rcpts]
    return [message_from_bytes(raw, policy=policy.default) for raw in raws]  # type: ignore[misc]


class Mailbox:
    """What an address has received so far, so a test can ask for what came next."""

    def __init__(self, desk: Desk, address: str) -> None:
        self.desk, self.address = desk, address
        self.seen = len(received(desk, address))

    def next(self, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        def more() -> list[EmailMessage] | None:
            got = received(self.desk, self.address)
            return got[self.seen : self.seen + count] if len(got) >= self.seen + count else None

        found = wait_until(more, timeout)
        self.seen += count
        return found

    def nothing_new(self) -> bool:
        """Nothing more came, once the outbox has sent all it holds (a wrongly queued mail
        would otherwise still be on its way when this is asked)."""
        wait_until(lambda: self.desk.count_of("outbox", "WHERE status = 'queued'") in (0, inf))
        wait_until(lambda: all(e["status"] != "queued" for e in self.desk.json("outbox")))
        return len(received(self.desk, self.address)) == self.seen


@dataclass
class Opened:
    ticket: dict[str, Any]
    ack: EmailMessage
    notice: EmailMessage  # the new-ticket notice to the queue's agent (alice)

    @property
    def ref(self) -> str:
        return str(self.ticket["ref"])

    def first_message_id(self, desk: Desk) -> str:
        """The Message-ID of the requester's mail that opened the ticket."""
        return str(desk.ticket(self.ref)["messages"][0]["message_id"])


def open_ticket(
    desk: Desk,
    subject: str = "Printer on fire",
    body: str = "Help, it is burning.",
    *,
    sender: str = f"Carol Customer <{CAROL}>",
    cc: str | None = None,
) -> Opened:
    """A requester opens a ticket in queue `it`; wait for the acknowledgement and notice."""
    requester = sender.rpartition("<")[2].rstrip(">") or sender
    ack_box, alice_box = Mailbox(desk, requester), Mailbox(desk, ALICE)
    count = len(desk.tickets())
    msg = mail(subject, body, sender=sender, headers={"Cc": cc} if cc else None)
    desk.send(msg)
    tickets = desk.wait_tickets(count + 1)
    [ack] = ack_box.next()
    [notice] = alice_box.next()
    ticket = next(t for t in tickets if t["subject"] == subject)
    return Opened(ticket, ack, notice)


def client_reply(name: str, new: str, answering: EmailMessage, **values: str) -> bytes:
    """A reply as the mail client of fixture `name` writes it, answering `answering`."""
    refs = " ".join([str(answering.get("References", "")), str(answering["Message-ID"])])
    defaults = {
        "FROM": ALICE,
        "TO": str(answering["Reply-To"]),
        "SUBJECT": str(answering["Subject"]),
        "IN_REPLY_TO": str(answering["Message-ID"]),
        "REFERENCES": refs.strip(),
        "NONCE": uuid.uuid4().hex[:12],
        "NEW": new,
    }
    text = Template((REPLIES / name).read_text(encoding="utf-8")).substitute({**defaults, **values})
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def reply(
    desk: Desk,
    answering: EmailMessage,
    new: str,
    *,
    client: str = "thunderbird.eml",
    sender: str = ALICE,
    to: str | None = None,
    **values: str,
) -> None:
    """Send a reply to `answering` as `sender` would from `client`, to its Reply-To."""
    rcpt = to or str(answering["Reply-To"])
    raw = client_reply(client, new, answering, FROM=sender, TO=rcpt, **values)
    desk.send(raw, to=[rcpt], mail_from=sender)


def plain_reply(
    desk: Desk,
    answering: EmailMessage,
    body: str,
    *,
    sender: str,
    to: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A requester-side reply: subject tag and In-Reply-To, quoted text below."""
    msg = mail(
        f"Re: {answering['Subject']}",
        f"{body}\n\nOn Sun, 22 Nov 2026, Test Desk wrote:\n"
        + _quoted(answering.get_content()[:200]),
        sender=sender,
        to=to or str(answering["Reply-To"]),
        in_reply_to=str(answering["Message-ID"]),
        references=f"{answering.get('References', '')} {answering['Message-ID']}".strip(),
        headers=headers,
    )
    desk.send(msg)
    return msg


def _quoted(text: str) -> str:
    """Every line quoted, as mail clients quote."""
    return "\n".join(f"> {line}" for line in text.splitlines())


def events(desk: Desk, ref: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in desk.ticket(ref)["events"] if e["kind"] == kind]


def mutt_reply(desk: Desk, answering: EmailMessage, new: str, tmp: Path) -> None:
    """Reply to `answering` with the real mutt, as an agent would at a terminal.

    mutt needs a terminal, so it runs under `script`; keys are pushed (r: reply, y: send,
    q: quit), and the editor is a script that writes `new` above mutt's quoted text.
    """
    mutt = require_tool("mutt")
    script = require_tool("script")
    box = tmp / "notice.mbox"
    box.write_bytes(
        b"From support@example.com Sun Nov 22 10:00:00 2026\n"
        + answering.as_bytes().replace(b"\r\n", b"\n")
        + b"\n"
    )
    editor = tmp / "editor.sh"
    (tmp / "new.txt").write_text(new + "\n\n", encoding="utf-8")
    editor.write_text(
        f'#!/bin/sh\ncat {shlex.quote(str(tmp / "new.txt"))} "$1" > "$1.new" && '
        'cat "$1.new" > "$1" && rm -f "$1.new"\n'
    )
    editor.chmod(0o755)
    muttrc = tmp / "muttrc"
    muttrc.write_text(
        textwrap.dedent(
            f"""\
            set from="{ALICE}"
            set realname="Alice Admin"
            set use_from=yes
            set smtp_url="smtp://127.0.0.1:{desk.port}/"
            set ssl_starttls=no
            set ssl_force_tls=no
            set folder="{tmp}"
            set spoolfile="{box}"
            set include=yes
            set fast_reply=yes
            set reply_to=yes
            set editor="{editor}"
            set edit_headers=no
            set abort_unmodified=no
            set askcc=no
            set askbcc=no
            set copy=no
            set record=""
            set move=no
            set postpone=no
            set quit=yes
            set sleep_time=0
            set wait_key=no
            set header_cache=""
            set charset="utf-8"
            """
        )
    )
    command = f"{mutt} -n -F {shlex.quote(str(muttrc))} -f {shlex.quote(str(box))} -e 'push ryq'"
    done = subprocess.run(
        [script, "-qec", command, "/dev/null"],
        env={**os.environ, "TERM": "xterm", "HOME": str(tmp)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:]
