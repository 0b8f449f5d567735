"""Who may act as an agent: reply tokens and trusted Authentication-Results. Pure functions.

A From header is whatever the sender typed, so it proves nothing. An agent's mail counts as
the agent's only with one of two proofs:

- the ticket's *agent* reply token in a recipient address (support+42-a<mac>@…). Tokens
  are an HMAC of the ticket id and the desk's secret, so they cannot be guessed, and a
  token minted for one ticket fails on any other. An agent token also binds the agent's
  address: it is minted for one agent, sent only to that agent, and proves only mail whose
  From is that agent (a forwarded notice gives its reader no agent's powers but, with a
  forged From, that one agent's on that one ticket). The requester's mail carries a
  *requester* token, which threads replies but never proves an agent. An *approver* token
  (support+42-p<mac>@…) is minted the same way for one approver of a catalog request and
  proves only that approver's answer (From that approver) on that one ticket.
- a pass in an `Authentication-Results` header added by a mail server we trust (its
  authserv-id is configured): DMARC pass, or DKIM pass aligned with the From domain (SPF
  alone proves only the envelope, never the From). The header is read as sent (never
  RFC 2047-decoded) and only where that server writes it: in the trace it added on top of
  the message, i.e. above its own Received line (Exim) or in the run of
  Authentication-Results directly below it (Postfix milters). The first header with a
  trusted authserv-id there decides; one that cannot be read is no proof. Everything
  below is the sender's to forge, so the server must also strip incoming copies of its
  own (RFC 8601 section 5); docs/agents.md gives the settings.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import authres

from maildesk.mail.address import normalise_domain

# Reply addresses are composed in maildesk.mail.address; named here for the App.
from maildesk.mail.address import plus_address as plus_address

Role = Literal["requester", "agent", "approver"]
_ROLE_CODE: dict[Role, str] = {"requester": "r", "agent": "a", "approver": "p"}
_CODE_ROLE: dict[str, Role] = {code: role for role, code in _ROLE_CODE.items()}
_BOUND: tuple[Role, ...] = ("agent", "approver")  # tokens that bind one person's address
_TOKEN = re.compile(r"^(\d{1,18})-([rap])([0-9a-f]{20})$")
_STATUS_TOKEN = re.compile(r"^(\d{1,18})-([0-9a-f]{32})$")


@dataclass(frozen=True)
class Token:
    ticket_id: int
    role: Role


class TokenCodec:
    """Mints and checks the reply tokens of one desk secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the reply-token secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, ticket_id: int, role: Role, agent: str) -> str:
        msg = f"maildesk-reply-token:{ticket_id}:{role}:{agent.lower()}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:20]

    def mint(self, ticket_id: int, role: Role, agent: str = "") -> str:
        """'42-a1b2…': ticket id, role letter, 80 bits of HMAC (over the agent's or the
        approver's address too)."""
        if role in _BOUND and not agent:
            raise ValueError(f"an {role} token is minted for one {role}'s address")
        mac = self._mac(ticket_id, role, agent if role in _BOUND else "")
        return f"{ticket_id}-{_ROLE_CODE[role]}{mac}"

    def verify(self, token: str, sender: str = "") -> Token | None:
        """The ticket and role a token was minted for, or None if it is not ours; an agent
        (or approver) token counts only when `sender` is the one it was minted for."""
        m = _TOKEN.match(token.lower())
        if not m:
            return None
        ticket_id = int(m.group(1))
        role = _CODE_ROLE[m.group(2)]
        if role in _BOUND and not sender:
            return None
        mac = self._mac(ticket_id, role, sender if role in _BOUND else "")
        if not hmac.compare_digest(m.group(3), mac):
            return None
        return Token(ticket_id, role)

    def _status_mac(self, ticket_id: int) -> str:
        msg = f"maildesk-status-page:{ticket_id}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def status_token(self, ticket_id: int) -> str:
        """'42-<128 bits of HMAC>': the token of a ticket's requester status page (never a
        reply token: knowing one tells nothing of the other)."""
        return f"{ticket_id}-{self._status_mac(ticket_id)}"

    def status_ticket(self, token: str) -> int | None:
        """The ticket a status-page token was minted for, or None."""
        m = _STATUS_TOKEN.match(token)
        if not m or not hmac.compare_digest(m.group(2), self._status_mac(int(m.group(1)))):
            return None
        return int(m.group(1))


@dataclass(frozen=True)
class AuthVerdict:
    """Whether a trusted server vouched for the From domain, and what it said."""

    passed: bool
    detail: str = ""


def _aligned(domain: str | None, from_domain: str) -> bool:
    """Relaxed DMARC alignment: the same domain, or one a subdomain of the other."""
    if not domain:
        return False
    d = normalise_domain(domain.strip().rstrip("."))  # d=xn--exmple-cua.se is exämple.se
    return d == from_domain or d.endswith("." + from_domain) or from_domain.endswith("." + d)


def _prop(result: authres.core.AuthenticationResult, ptype: str, name: str) -> str | None:
    for p in result.properties:
        if p.type == ptype and p.name == name:
            value = str(p.value)
            return value.rpartition("@")[2] if "@" in value else value
    return None


_AUTHSERV_ID = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[^\s;()"]+)')
# Trace fields milters insert next to their Authentication-Results (OpenARC, policyd-spf):
# passed over in the run below the border server's Received line.
_MILTER_TRACE = frozenset(
    {"arc-seal", "arc-message-signature", "arc-authentication-results", "received-spf"}
)
_BY = re.compile(r"(?:^|\s)by\s+([^\s;]+)", re.I)


def _without_comments(text: str) -> str:
    """RFC 5322 comments (nested, with quoted pairs) replaced by a space; quoted strings kept."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
        elif quoted:
            out.append(ch)
            quoted = ch != '"'
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                out.append(" ")
        elif depth == 0:
            out.append(ch)
            quoted = ch == '"'
    return "".join(out)


def received_by(value: str) -> str | None:
    """The host a Received line names after "by" (lower-cased), or None."""
    found = _BY.search(_without_comments(value).partition(";")[0])
    return found.group(1).lower().rstrip(".") if found else None


def _authserv_id(value: str) -> str | None:
    """The authserv-id an Authentication-Results value starts with, or None if unreadable."""
    found = _AUTHSERV_ID.match(_without_comments(value))
    if found is None:
        return None
    token = found.group(1)
    return token[1:-1] if token.startswith('"') else token


def _judge(value: str, trusted: set[str], from_domain: str) -> AuthVerdict | None:
    """The verdict of one Authentication-Results value; None when another server wrote it."""
    authserv_id = _authserv_id(value)
    if authserv_id is None:
        return AuthVerdict(False, "an Authentication-Results header without a readable authserv-id")
    if authserv_id.lower() not in trusted:
        return None
    try:
        parsed = authres.AuthenticationResultsHeader.parse_value(value)
    except Exception:  # a trusted header we cannot read proves nothing, nor does one below
        return AuthVerdict(False, f"an unreadable Authentication-Results from {authserv_id}")
    if str(parsed.authserv_id).lower() != authserv_id.lower():
        return AuthVerdict(False, f"an unreadable Authentication-Results from {authserv_id}")
    for result in parsed.results:
        method, outcome = str(result.method).lower(), str(result.result).lower()
        if outcome != "pass":
            continue
        if method == "dmarc" and _aligned(_prop(result, "header", "from"), from_domain):
            return AuthVerdict(True, f"dmarc=pass by {parsed.authserv_id}")
        if method == "dkim" and _aligned(_prop(result, "header", "d"), from_domain):
            return AuthVerdict(True, f"dkim=pass (aligned) by {parsed.authserv_id}")
    return AuthVerdict(False, f"no aligned pass from {parsed.authserv_id}")


def authentication_results(
    headers: Sequence[tuple[str, str]], trusted_ids: Collection[str], from_addr: str
) -> AuthVerdict:
    """Did a trusted server's Authentication-Results pass the From address's domain?

    `headers` is the message's whole header block in order, as (lower-cased name, value as
    sent: unfolded, never decoded). Walking from the top, the trace our servers added
    ends with the first Received line whose "by" is a trusted authserv-id (the border
    server's own), followed by the Authentication-Results (and ARC, Received-SPF) its
    milters inserted directly below it; the first one with a trusted authserv-id on the
    way decides. Headers past that, and any mail without that Received line, are the
    sender's.
    """
    trusted = {t.lower().rstrip(".") for t in trusted_ids}
    from_domain = from_addr.rpartition("@")[2].lower()
    if not trusted or not from_domain:
        return AuthVerdict(False)
    decided: AuthVerdict | None = None  # the first header on the way that is not another's
    border = False  # passed the trusted server's own Received line
    for name, value in headers:
        if name == "received":
            if border:
                break  # an older hop's line: it came with the message
            border = received_by(value) in trusted
        elif name == "authentication-results":
            if decided is None:
                decided = _judge(value, trusted, from_domain)
        elif border and name not in _MILTER_TRACE:
            break  # the sender's own headers start here
    if not border:
        detail = "no Received line of a trusted server above the sender's headers"
        return AuthVerdict(False, detail if decided is not None else "")
    return decided or AuthVerdict(False)
