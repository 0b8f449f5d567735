"""Rule conditions: compiled once from TOML into predicates over a message's facts.

A leaf condition is a table with `field`, exactly one operator key and, for `header`, a
`name`:  { field = "from", domain = ["vendor.example", "alerts.example"] }.
Combinators: { all = [...] }, { any = [...] }, { not = {...} }. The `match` shorthand of
a rule ({ subject = "(?i)outage" }) is a list of `regex` leaves, all of which must hold.

Every leaf is compiled to a closure at load (its operator's test comes from `operators.py`:
regexes and globs compiled, lists turned into sets), so evaluating a rule is a few function
calls; `explain` gives the reason a condition held or failed, for `maildesk route test`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from maildesk.routing.cis import Service
from maildesk.routing.operators import LOWERED_OPS, WEEKDAYS, compile_operator
from maildesk.routing.organisations import Organisation, organisation_for

__all__ = [
    "FIELDS",
    "OPERATORS",
    "WEEKDAYS",
    "Condition",
    "Facts",
    "Predicate",
    "Problems",
    "Routable",
    "RouteContext",
    "all_of",
    "compile_condition",
    "compile_match",
]

Problems = list[tuple[str, str]]

# field -> kind: "text" (one string), "texts" (several), "number", "flag", "time", "day"
FIELDS: dict[str, str] = {
    "subject": "text",
    "from": "text",
    "from_domain": "text",
    "to": "texts",
    "cc": "texts",
    "recipients": "texts",  # to, cc and the envelope recipients
    "body": "text",
    "header": "texts",  # with name = "X-Whatever"; every value of a repeated header
    "attachment_name": "texts",
    "attachment_type": "texts",
    "attachment_count": "number",
    "size": "number",  # bytes of the raw message
    "charset": "texts",  # declared charsets of the text parts
    "language": "texts",  # Content-Language
    "sender_is_agent": "flag",
    "sender_is_vip": "flag",  # [routing] vips, or the sender's organisation is vip
    "organisation": "text",  # the name of the sender's organisation ("" if none)
    "organisation_is_vip": "flag",
    "hour": "number",  # 0-23 in the desk's timezone, when the message is routed
    "time": "time",  # "HH:MM"; use `between = ["18:00", "08:00"]` (wraps midnight)
    "weekday": "day",  # mon..sun
    "ci": "texts",  # the CIs the message names (maildesk.routing.cis), by name
    "service": "texts",  # those CIs' services
}
TEXT_OPS = ("equals", "contains", "regex", "glob", "in", "domain", "exists")
NUMBER_OPS = ("equals", "in", "lt", "le", "gt", "ge", "between", "exists")
OPERATORS: dict[str, tuple[str, ...]] = {
    "text": TEXT_OPS,
    "texts": TEXT_OPS,
    "number": NUMBER_OPS,
    "flag": ("is",),
    "time": ("between",),
    "day": ("equals", "in"),
}
LEAF_KEYS = {"field", "name"}


class Routable(Protocol):
    """What the router reads from a message (a ParsedMessage satisfies it)."""

    @property
    def subject(self) -> str: ...
    @property
    def from_addr(self) -> str: ...
    @property
    def to(self) -> tuple[str, ...]: ...
    @property
    def cc(self) -> tuple[str, ...]: ...
    @property
    def body_text(self) -> str: ...


@dataclass(frozen=True, kw_only=True)
class RouteContext:
    """What routing needs besides the message: who is who, and when (in the desk's zone)."""

    now: datetime | None = None
    agents: frozenset[str] = frozenset()
    vips: tuple[str, ...] = ()  # addresses, or "@domain" for a whole domain
    envelope_to: tuple[str, ...] = ()
    organisations: tuple[Organisation, ...] = ()
    cis: tuple[str, ...] = ()  # the CIs the message is about
    ci_services: tuple[str, ...] = ()  # their services, in order
    services: tuple[Service, ...] = ()  # every configured service (owner queues)
    impact_from_service: bool = False  # [priority_matrix]: a service's criticality is impact

    def service(self, name: str | None) -> Service | None:
        """The configured service of that name."""
        return next((s for s in self.services if s.name == name), None)

    def organisation(self, address: str) -> Organisation | None:
        """The organisation of an address (by its domain), if one is configured."""
        return organisation_for(address, self.organisations) if self.organisations else None


class Facts:
    """The values conditions look at, computed once per message and on first use."""

    def __init__(self, msg: Routable, ctx: RouteContext) -> None:
        self.msg, self.ctx = msg, ctx
        self._cache: dict[str, tuple[Any, ...]] = {}

    def values(
        self, name: str, header: str | None = None, key: str | None = None
    ) -> tuple[Any, ...]:
        """A field's values; `key` (precompiled by the caller) names the cache slot."""
        key = key or (f"header:{header.lower()}" if header else name)
        try:
            return self._cache[key]
        except KeyError:
            found = self._cache[key] = self._compute(name, header)
            return found

    def lowered(self, name: str, header: str | None, key: str, slot: str) -> tuple[Any, ...]:
        """The field's values lower-cased (for the case-insensitive operators), cached."""
        try:
            return self._cache[slot]
        except KeyError:
            found = self._cache[slot] = tuple(v.lower() for v in self.values(name, header, key))
            return found

    def _compute(self, name: str, header: str | None) -> tuple[Any, ...]:
        m, ctx = self.msg, self.ctx
        sender = m.from_addr.lower()
        attachments = getattr(m, "attachments", ())
        local = ctx.now
        match name:
            case "subject":
                return (m.subject,)
            case "from":
                return (sender,)
            case "from_domain":
                return (sender.rpartition("@")[2],)
            case "to":
                return m.to
            case "cc":
                return m.cc
            case "recipients":
                return tuple(dict.fromkeys((*m.to, *m.cc, *ctx.envelope_to)))
            case "body":
                return (m.body_text,)
            case "header":
                wanted = (header or "").lower()
                return tuple(v for k, v in getattr(m, "headers", ()) if k == wanted)
            case "attachment_name":
                return tuple(a.filename for a in attachments)
            case "attachment_type":
                return tuple(a.content_type for a in attachments)
            case "attachment_count":
                return (len(attachments),)
            case "size":
                return (getattr(m, "size", 0),)
            case "charset":
                return tuple(getattr(m, "charsets", ()))
            case "language":
                values = (v for k, v in getattr(m, "headers", ()) if k == "content-language")
                return tuple(lang.strip().lower() for v in values for lang in v.split(","))
            case "sender_is_agent":
                return (sender in ctx.agents,)
            case "sender_is_vip":
                domain = "@" + sender.rpartition("@")[2]
                org = ctx.organisation(sender)
                return (any(v in (sender, domain) for v in ctx.vips) or bool(org and org.vip),)
            case "organisation":
                org = ctx.organisation(sender)
                return (org.name if org else "",)
            case "organisation_is_vip":
                org = ctx.organisation(sender)
                return (bool(org and org.vip),)
            case "hour":
                return (local.hour,) if local else ()
            case "time":
                return (local.time(),) if local else ()
            case "weekday":
                return (WEEKDAYS[local.weekday()],) if local else ()
            case "ci":
                return ctx.cis
            case "service":
                return ctx.ci_services
        raise AssertionError(f"unknown field {name}")


Predicate = Callable[[Facts], bool]


@dataclass(frozen=True)
class Condition:
    """A compiled condition: `holds` for routing, `explain` for `route test`."""

    holds: Predicate
    text: str  # e.g. "subject regex /(?i)outage/"
    parts: tuple[Condition, ...] = field(default=())
    kind: str = "leaf"  # leaf, all, any, not

    def explain(self, facts: Facts) -> tuple[bool, str]:
        """Whether it holds, and the reason: the first failing part, or what matched."""
        ok = self.holds(facts)
        if self.kind == "leaf":
            return ok, f"{self.text}: {'yes' if ok else 'no'}"
        if self.kind == "not":
            _, inner = self.parts[0].explain(facts)
            return ok, f"not ({inner})"
        details = [part.explain(facts) for part in self.parts]
        if self.kind == "all":
            failed = next((why for part_ok, why in details if not part_ok), None)
            return ok, failed if failed else " and ".join(why for _, why in details)
        matched = next((why for part_ok, why in details if part_ok), None)
        return ok, matched if matched else "none of: " + "; ".join(why for _, why in details)


def all_of(parts: Iterable[Condition]) -> Condition:
    items = tuple(parts)
    preds = tuple(p.holds for p in items)
    if len(preds) == 1:
        return items[0]
    return Condition(lambda f: all(p(f) for p in preds), "all", items, "all")


def compile_match(match: object, place: str, problems: Problems) -> list[Condition]:
    """The shorthand `match = { field = "regex", ... }`: regex leaves, all must hold."""
    if not isinstance(match, Mapping):
        problems.append((f"{place} key 'match'", "must be a table of field = regex"))
        return []
    out = []
    for key, value in match.items():
        where = f"{place} key 'match.{key}'"
        if key not in FIELDS or FIELDS[key] not in ("text", "texts") or key == "header":
            known = [f for f, k in FIELDS.items() if k in ("text", "texts") and f != "header"]
            problems.append((where, f"unknown field (known: {', '.join(known)})"))
            continue
        leaf = _leaf(key, "regex", value, None, where, problems)
        if leaf is not None:
            out.append(leaf)
    return out


def compile_condition(
    spec: object, place: str, problems: Problems, path: str = "when"
) -> Condition | None:
    """Compile a `when` tree; append a problem (naming rule and key path) for each error."""
    if not isinstance(spec, Mapping):
        problems.append((_at(place, path), f"a condition must be a table, got {spec!r}"))
        return None
    combinators = [k for k in ("all", "any", "not") if k in spec]
    if combinators:
        return _combinator(spec, combinators[0], place, problems, path)
    return _leaf_spec(spec, place, problems, path)


def _at(place: str, path: str, key: str | None = None) -> str:
    """The place of a condition's key: "[[rules]] 'name' key 'when.all[0].field'"."""
    return f"{place} key '{path}.{key}'" if key else f"{place} key '{path}'"


def _combinator(
    spec: Mapping[Any, Any], key: str, place: str, problems: Problems, path: str
) -> Condition | None:
    """{ all = [...] }, { any = [...] } or { not = {...} }, alone in its table."""
    if len(spec) != 1:
        extra = ", ".join(sorted(str(k) for k in spec if k != key))
        problems.append((_at(place, path), f"'{key}' cannot be combined with {extra} in one table"))
        return None
    body = spec[key]
    if key == "not":
        inner = compile_condition(body, place, problems, f"{path}.not")
        if inner is None:
            return None
        pred = inner.holds
        return Condition(lambda f: not pred(f), "not", (inner,), "not")
    if not isinstance(body, list) or not body:
        problems.append((_at(place, path, key), "must be a non-empty list of conditions"))
        return None
    parts = [
        compile_condition(c, place, problems, f"{path}.{key}[{i}]") for i, c in enumerate(body)
    ]
    if any(p is None for p in parts):
        return None
    compiled = tuple(p for p in parts if p is not None)
    preds = tuple(p.holds for p in compiled)
    if key == "all":
        return Condition(lambda f: all(p(f) for p in preds), "all", compiled, "all")
    return Condition(lambda f: any(p(f) for p in preds), "any", compiled, "any")


def _leaf_spec(
    spec: Mapping[Any, Any], place: str, problems: Problems, path: str
) -> Condition | None:
    """{ field = ..., <one operator> = value }, and name = "Header-Name" for field header."""
    name = spec.get("field")
    if name not in FIELDS:
        problems.append(
            (
                _at(place, path, "field"),
                f"unknown field {name!r} (known: {', '.join(FIELDS)}); or use all/any/not",
            )
        )
        return None
    ops = [k for k in spec if k not in LEAF_KEYS]
    allowed = OPERATORS[FIELDS[name]]
    if len(ops) != 1 or ops[0] not in allowed:
        problems.append(
            (
                _at(place, path),
                f"field {name!r} needs exactly one operator of: {', '.join(allowed)} "
                f"(got {', '.join(map(str, ops)) or 'none'})",
            )
        )
        return None
    header = spec.get("name")
    if name == "header" and not (isinstance(header, str) and header.strip()):
        problems.append((_at(place, path, "name"), "field 'header' needs name = \"Header-Name\""))
        return None
    if name != "header" and "name" in spec:
        problems.append((_at(place, path, "name"), "only field 'header' takes a name"))
        return None
    return _leaf(name, ops[0], spec[ops[0]], header, _at(place, path, ops[0]), problems)


def _leaf(
    name: str, op: str, value: object, header: str | None, where: str, problems: Problems
) -> Condition | None:
    label = f"header {header}" if header else name
    try:
        test = compile_operator(FIELDS[name], op, value)
    except ValueError as exc:
        problems.append((where, str(exc)))
        return None

    key = f"header:{header.lower()}" if header else name
    if op in LOWERED_OPS and FIELDS[name] in ("text", "texts"):
        lowered = "lower:" + key

        def holds(facts: Facts) -> bool:
            return test(facts.lowered(name, header, key, lowered))

    else:

        def holds(facts: Facts) -> bool:
            return test(facts.values(name, header, key))

    return Condition(holds, f"{label} {op} {_show(value)}")


def _show(value: object) -> str:
    if isinstance(value, str):
        return f"/{value}/" if value else '""'
    return repr(value)
