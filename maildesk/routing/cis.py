"""Services, configuration items (CIs) and which CIs a text names. Pure.

A CI is known by its name and its aliases (hostnames, FQDNs, asset tags, IP addresses).
`Inventory.recognise` finds every CI a subject or body names as a whole token:

- A token is a run of letters, digits, `_`, `.`, `-` and `:` that starts and ends with a
  letter or digit, so `mail01` is not in `mail010`, `xmail01` or `mail01-old`, while
  `mail01.` at the end of a sentence, `(mail01)` and `root@mail01` are. A token with a colon
  that is no IP address is also tried in its parts (`mail01:25`, `10.0.0.5:8080`).
- Case: a name or alias written in lower case matches in any case (hostnames and FQDNs, as
  DNS compares them); one written with a capital letter matches only exactly as written
  (asset tags such as `AT-00123`).
- IP addresses compare as addresses (`fe80::0001` is `fe80::1`), never as text.
- `[cmdb] domains`: a token under one of these domains also matches its short name
  (`mail01.example.com` names CI `mail01`), and a CI known by such an FQDN is also named
  by its short form.

Every token is looked up in dictionaries built once per inventory, so a text costs the
same with five CIs as with five thousand.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "CRITICALITIES",
    "SOURCES",
    "Ci",
    "Inventory",
    "Service",
    "affected_services",
    "ip_of",
]

CRITICALITIES = ("low", "medium", "high")
# How a CI came to be linked to a ticket.
SOURCES = ("recognised", "agent", "alert", "request")
MAX_SCAN = 200_000  # characters of a body looked at; a CI named further down is not seen
_RUN = re.compile(r"[\w.:-]+")  # a token once its ends are stripped of ".:-"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, kw_only=True)
class Service:
    """One `[[services]]` entry: what users rely on, who owns it, what it depends on."""

    name: str
    description: str = ""
    queue: str  # the owner queue: tickets about the service go there when no rule says
    criticality: str = "medium"  # one of CRITICALITIES
    sla_policy: str | None = None  # its tickets' SLA policy when no rule picks one
    depends_on: tuple[str, ...] = ()  # other services' names
    subscribers: tuple[str, ...] = ()  # addresses told of outages


@dataclass(frozen=True, kw_only=True)
class Ci:
    """One configuration item of the inventory (`[cmdb] path`)."""

    name: str
    kind: str = ""  # host, application, switch, ... (free text)
    services: tuple[str, ...] = ()  # the services it runs, in the order given
    owner: str = ""
    aliases: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every name it is known by: its name, then its aliases."""
        return (self.name, *self.aliases)


K = TypeVar("K")


def _put(table: dict[K, str], key: K, name: str, explicit: bool) -> None:
    """An explicit key (a name or alias) is set; a derived short form never replaces one."""
    if explicit:
        table[key] = name
    else:
        table.setdefault(key, name)


def affected_services(services: Iterable[Service], names: Iterable[str]) -> tuple[str, ...]:
    """The named services and every service that depends on one of them, however far,
    in config order: what an incident on the named services affects. Unknown names are
    left out."""
    known = list(services)
    hit = {s.name for s in known} & set(names)
    grew = True
    while grew:
        more = {s.name for s in known if s.name not in hit and hit & set(s.depends_on)}
        grew = bool(more)
        hit |= more
    return tuple(s.name for s in known if s.name in hit)


def ip_of(text: str) -> IpAddress | None:
    """The IP address a text is, or None."""
    if not (":" in text or text[:1].isdigit()):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, eq=False)
class Inventory:
    """The CIs and the look-up tables recognition uses (built once, on load)."""

    cis: tuple[Ci, ...] = ()
    domains: tuple[str, ...] = ()  # [cmdb] domains, lower case, no leading dot
    _folded: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _exact: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _ips: dict[IpAddress, str] = field(default_factory=dict, init=False, repr=False)
    _by_name: dict[str, Ci] = field(default_factory=dict, init=False, repr=False)
    _any: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for ci in self.cis:
            self._by_name[ci.name] = ci
            for key in ci.keys:
                self._any.setdefault(key.lower(), ci.name)
                self._index(key, ci.name, explicit=True)
        for ci in self.cis:  # short forms after every explicit key, which they never shadow
            for key in ci.keys:
                short = self._short(key)
                if short:
                    self._index(short, ci.name, explicit=False)
                    self._any.setdefault(short.lower(), ci.name)

    def _index(self, key: str, name: str, *, explicit: bool) -> None:
        ip = ip_of(key)
        if ip is not None:
            _put(self._ips, ip, name, explicit)
        elif key != key.lower():
            _put(self._exact, key, name, explicit)
        else:
            _put(self._folded, key, name, explicit)

    def _short(self, token: str) -> str | None:
        """`mail01.example.com` -> `mail01` under [cmdb] domains = ["example.com"]."""
        lowered = token.lower()
        for domain in self.domains:
            if lowered.endswith("." + domain) and len(token) > len(domain) + 1:
                return token[: -len(domain) - 1]
        return None

    def __len__(self) -> int:
        return len(self.cis)

    def get(self, name: str) -> Ci | None:
        """The CI of exactly that name."""
        return self._by_name.get(name)

    def find(self, word: str) -> Ci | None:
        """The CI a person means by a name or alias (any case, IP addresses as addresses),
        as `#ci NAME` and a monitor's host name it."""
        word = word.strip()
        ip = ip_of(word)
        name = self._ips.get(ip) if ip is not None else None
        name = name or self._any.get(word.lower())
        if name is None:
            short = self._short(word)
            name = self._any.get(short.lower()) if short else None
        return self._by_name.get(name) if name else None

    def close_names(self, word: str, n: int = 5) -> list[str]:
        """CI names close to a word that names none (for an error's "did you mean")."""
        keys = list(self._any)
        close = difflib.get_close_matches(word.lower(), keys, n=n * 2, cutoff=0.6)
        return list(dict.fromkeys(self._any[k] for k in close))[:n]

    def recognise(self, *texts: str) -> tuple[str, ...]:
        """The CIs the texts name as whole tokens, by name, in the order first named."""
        if not self.cis:
            return ()
        found: dict[str, None] = {}
        # Each distinct run once (findall runs in C; mail repeats its words), then trimmed.
        runs = dict.fromkeys(r for text in texts for r in _RUN.findall(text, 0, MAX_SCAN))
        for token in dict.fromkeys(r.strip(".:-") for r in runs):
            name = self._token(token)
            if name is None and ":" in token and ip_of(token) is None:
                name = next(filter(None, map(self._token, token.split(":"))), None)
            if name is not None:
                found.setdefault(name)
        return tuple(found)

    def _token(self, token: str) -> str | None:
        if not token:
            return None
        ip = ip_of(token)
        if ip is not None:
            return self._ips.get(ip)
        name = self._exact.get(token) or self._folded.get(token.lower())
        if name is None and self.domains:
            short = self._short(token)
            if short:
                name = self._exact.get(short) or self._folded.get(short.lower())
        return name

    def services_of(self, names: Iterable[str]) -> tuple[str, ...]:
        """The services of the named CIs, in order, each once."""
        found: dict[str, None] = {}
        for name in names:
            ci = self._by_name.get(name)
            found.update(dict.fromkeys(ci.services if ci else ()))
        return tuple(found)
