"""What an agent's reply must not hand the requester: agent tokens and quoted notices. Pure.

An agent reply token proves an agent (maildesk.routing.proof): a requester who got one could act
as that agent. So before a reply is relayed its attachments (text parts, attached messages,
.eml files) get every `support+<agent token>@` address replaced by the plain address, and
an attachment that still carries a token after that (say, in an encoded part of an
attached message) is not relayed. The reply's own text is not edited behind the agent's
back: if it carries an agent token, a notice's marker line or a notice's first line (a
notice quoted without ">" or forwarded inside the reply), the reply is not relayed and the
agent is told why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email import message_from_bytes
from email.policy import compat32

from maildesk.parse.headers import decode_words
from maildesk.parse.reply import NOTICE_MARKER

# The token of maildesk.routing.proof with the agent's role letter, and its plus-address.
AGENT_TOKEN = re.compile(r"(?<![0-9A-Za-z])\d{1,18}-a[0-9a-f]{20}(?![0-9A-Za-z])", re.I)
_AGENT_TOKEN_BYTES = re.compile(AGENT_TOKEN.pattern.encode(), re.I)
_PLUS_ADDRESS = re.compile(
    rb"([A-Za-z0-9._%-]+)\+" + _AGENT_TOKEN_BYTES.pattern + rb"(@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)",
    re.I,
)
# A notice's first line is quoted history only if it says enough to be unmistakable.
MIN_FIRST_LINE = 16
NOT_RELAYED = "not relayed to the requester"


def scrub_attachment(filename: str, content_type: str, content: bytes) -> bytes | None:
    """The attachment as it may be relayed (agent addresses made plain), or None if an
    agent token remains that cannot be removed."""
    if AGENT_TOKEN.search(filename):
        return None
    if _readable(filename, content_type):
        content = _PLUS_ADDRESS.sub(rb"\1\2", content)
    return None if carries_agent_token(filename, content_type, content) else content


def carries_agent_token(filename: str, content_type: str, content: bytes) -> bool:
    """An agent token anywhere in the bytes, or in a decoded part or header of an attached
    message (base64, quoted-printable and encoded-word hide it from a plain search)."""
    if _AGENT_TOKEN_BYTES.search(content):
        return True
    if not _message_like(filename, content_type):
        return False
    try:
        msg = message_from_bytes(content, policy=compat32)
        for part in msg.walk():
            for value in part.values():
                if AGENT_TOKEN.search(decode_words(str(value))):
                    return True
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes) and _AGENT_TOKEN_BYTES.search(payload):
                return True
    except Exception:  # unreadable as a message: the plain search above is all we can do
        return False
    return False


def _readable(filename: str, content_type: str) -> bool:
    return content_type.lower().startswith(("text/", "message/")) or _message_like(
        filename, content_type
    )


def _message_like(filename: str, content_type: str) -> bool:
    return content_type.lower().startswith("message/") or filename.lower().endswith(".eml")


def quoted_notice_problems(text: str, notices: Iterable[str]) -> list[str]:
    """Why the reply text `text` must not be relayed: each line that carries an agent token,
    a notice's marker line or the first line of one of the agent notices `notices`."""
    firsts = {first for body in notices if len(first := _first_line(body)) >= MIN_FIRST_LINE}
    problems = []
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        bare = line.strip().lstrip("> ").strip()
        if AGENT_TOKEN.search(line):
            problems.append(
                f"line {number}: carries an agent reply address, which proves you; "
                f"{NOT_RELAYED}: resend without it"
            )
        elif NOTICE_MARKER.search(line) or (bare and bare in firsts):
            problems.append(
                f'line {number} "{_short(bare)}": quotes a notice maildesk sent you; '
                f"{NOT_RELAYED}: resend without the quoted notice"
            )
    return problems


def _first_line(body: str) -> str:
    return next((line.strip() for line in body.splitlines() if line.strip()), "")


def _short(line: str, width: int = 60) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"
