"""Commands by mail: `#status resolved` and friends at the top of an agent's reply. Pure.

The command block is the run of lines starting with `#word` at the top of the reply's new
text (blank lines between them allowed); the first other line ends it, so a `#` further
down is just text. Every line of the block is checked against the desk's config; any error
means none of the commands is applied (the caller reports every error at once, with its
line). The same parser serves `maildesk ticket reply/note/set`, so mail and CLI agree.

A note must never reach the requester, however it is typed: lines a human would mean as a
note but that are not a valid `#note` in the block are errors (see maildesk.tickets.notes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from maildesk.routing.rules import LEVELS
from maildesk.terms import PRIORITIES, SETTABLE_STATUSES, TYPES
from maildesk.tickets.change_commands import parse_failed, parse_implemented, parse_schedule
from maildesk.tickets.ci_commands import parse_broadcast, parse_ci
from maildesk.tickets.kb_commands import parse_kb, parse_kb_draft
from maildesk.tickets.notes import NOTE_ERROR, mentions_note, normalise, note_lookalikes

_STATUS_ALIASES = {"onhold": "on-hold", "on_hold": "on-hold", "hold": "on-hold"}
_TYPE_ALIASES = {"service-request": "request", "service_request": "request"}
_LEVEL_ALIASES = {"h": "high", "m": "medium", "med": "medium", "l": "low"}
# Commands that take one value: two of them on one reply must agree.
SINGLE: tuple[str, ...] = ("status", "priority", "impact", "urgency", "assign", "queue")
SINGLE += ("type", "merge", "category", "problem", "known-error", "schedule")
NAMES: tuple[str, ...] = ("status", "priority", "impact", "urgency", "assign", "queue")
NAMES += ("tag", "type", "note", "merge", "link", "unlink", "cc", "category", "problem")
NAMES += ("known-error", "kb", "kb-draft", "schedule", "implemented", "failed", "ci", "broadcast")
_ALIASES = {
    "tags": "tag",
    **dict.fromkeys(("watcher", "watchers", "watch"), "cc"),
    "assignee": "assign",
    "notes": "note",
    "internal": "note",
    "private": "note",
    **dict.fromkeys(("known_error", "knownerror"), "known-error"),
    "window": "schedule",
    "fail": "failed",
}
# "#status resolved", and the spellings clients and habits produce: "# note", "#note:",
# "*#note*" (rich-text bold turned into text), "#note, the vendor says ...".
_LINE = re.compile(r"^[*_]*#\s*([A-Za-z][\w-]*)[*_]*[:,.]?(?:\s+(.*?))?[*_]*$")
_TAG = re.compile(r"^[\w.:/-]{1,64}$")
# A plain address: no quotes, brackets, commas or semicolons that would bend a header.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@dataclass(frozen=True, kw_only=True)
class AgentRef:
    email: str
    name: str


@dataclass(frozen=True, kw_only=True)
class CommandContext:
    """What commands are checked against: the desk's queues and agents, and who acts."""

    actor: str | None  # the acting agent's address ("me"); None: not an agent
    queues: Collection[str]
    agents: Sequence[AgentRef]
    ref_prefix: str
    own_addresses: Collection[str] = ()
    timezone: str = "UTC"  # the desk's: how `#schedule` reads a time without an offset


@dataclass(frozen=True, kw_only=True)
class Command:
    """One valid command. `value` holds the single value; `add`/`remove` hold lists."""

    name: str
    line: int
    text: str
    value: str | None = None
    target: int | None = None  # ticket number for merge, link, unlink, problem
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandError:
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f'line {self.line} "{self.text}": {self.reason}'


@dataclass(frozen=True)
class ParsedReply:
    """A reply split into its command block and the text that follows."""

    commands: tuple[Command, ...] = ()
    errors: tuple[CommandError, ...] = ()
    text: str = ""
    internal: bool = False  # #note: the whole reply stays internal
    lines: tuple[str, ...] = field(default=())  # the command lines as written


def parse_reply(text: str, ctx: CommandContext) -> ParsedReply:
    """Split off and check the command block at the top of `text`."""
    written_lines = text.replace("\r\n", "\n").split("\n")
    lines = [normalise(line) for line in written_lines]  # matched as normalised, kept as written
    commands: list[Command] = []
    errors: list[CommandError] = []
    written: list[str] = []
    body_start = len(lines)
    note_text = ""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        m = _LINE.match(stripped)
        if not m:
            body_start = i
            break
        written.append(stripped)
        result = _command(i + 1, stripped, m.group(1).lower(), (m.group(2) or "").strip(), ctx)
        if isinstance(result, CommandError):
            errors.append(result)
            continue
        if result.name == "note" and result.value:
            note_text = result.value
        commands.append(result)
    errors += _conflicts(commands)
    errors += _misplaced(lines, body_start)
    judged = {e.line for e in errors} | {c.line for c in commands}
    errors += [CommandError(*found) for found in note_lookalikes(lines, body_start, judged)]
    rest = "\n".join(written_lines[body_start:]).strip()
    if note_text:
        rest = f"{note_text}\n\n{rest}".strip()
    internal = (
        any(c.name == "note" for c in commands)
        or mentions_note("\n".join(lines[body_start:]))
        or any(e.reason.startswith(NOTE_ERROR) for e in errors)
    )
    return ParsedReply(
        commands=tuple(commands),
        errors=tuple(errors),
        text=rest,
        internal=internal,
        lines=tuple(written),
    )


def _misplaced(lines: Sequence[str], body_start: int) -> list[CommandError]:
    """A command below the text would silently do nothing: say so instead."""
    errors = []
    for i in range(body_start, len(lines)):
        stripped = lines[i].strip()
        m = _LINE.match(stripped)
        if m and _ALIASES.get(m.group(1).lower(), m.group(1).lower()) in NAMES:
            errors.append(
                CommandError(
                    i + 1, stripped, "commands go at the top of the reply, before any text"
                )
            )
    return errors


def _conflicts(commands: Sequence[Command]) -> list[CommandError]:
    errors = []
    seen: dict[str, Command] = {}
    for c in commands:
        first = seen.get(c.name)
        if c.name in SINGLE and first is not None and first.value != c.value:
            errors.append(
                CommandError(c.line, c.text, f"contradicts line {first.line} ({first.text})")
            )
        seen.setdefault(c.name, c)
    priority = seen.get("priority")
    level = seen.get("impact") or seen.get("urgency")
    if priority is not None and level is not None:
        later = max(priority, level, key=lambda c: c.line)
        errors.append(
            CommandError(
                later.line, later.text, "set either #priority or #impact/#urgency, not both"
            )
        )
    return errors


def _command(
    line: int, text: str, word: str, arg: str, ctx: CommandContext
) -> Command | CommandError:
    name = _ALIASES.get(word, word)
    if name not in NAMES:
        return CommandError(line, text, f"unknown command #{word} (known: #{', #'.join(NAMES)})")
    try:
        return _PARSERS[name](line, text, arg, ctx)
    except ValueError as exc:
        return CommandError(line, text, str(exc))


def _one_arg(arg: str, what: str) -> str:
    if not arg:
        raise ValueError(f"needs {what}")
    if len(arg.split()) > 1 and what != "an agent":
        raise ValueError(f"takes one value ({what}), got {arg!r}")
    return arg


def _status(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    value = _one_arg(arg, "a status").lower()
    value = _STATUS_ALIASES.get(value, value)
    if value not in SETTABLE_STATUSES:
        raise ValueError(f"status must be one of {', '.join(SETTABLE_STATUSES)}")
    return Command(name="status", line=line, text=text, value=value)


def _priority(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    value = _one_arg(arg, "a priority").upper()
    value = f"P{value}" if value.isdigit() else value
    if value not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}")
    return Command(name="priority", line=line, text=text, value=value)


def _level(name: str) -> Parser:
    """#impact high, #urgency low: the ITIL levels the priority matrix reads."""

    def parse(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
        value = _one_arg(arg, f"an {name}").lower()  # an impact, an urgency
        value = _LEVEL_ALIASES.get(value, value)
        if value not in LEVELS:
            raise ValueError(f"{name} must be one of {', '.join(LEVELS)}")
        return Command(name=name, line=line, text=text, value=value)

    return parse


def _type(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    value = _one_arg(arg, "a type").lower()
    value = _TYPE_ALIASES.get(value, value)
    if value not in TYPES:
        raise ValueError(f"type must be one of {', '.join(TYPES)}")
    return Command(name="type", line=line, text=text, value=value)


def _queue(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    value = _one_arg(arg, "a queue name")
    found = next((q for q in ctx.queues if q.lower() == value.lower()), None)
    if found is None:
        raise ValueError(f"no queue {value!r} (queues: {', '.join(sorted(ctx.queues))})")
    return Command(name="queue", line=line, text=text, value=found)


def find_agent(who: str, agents: Sequence[AgentRef]) -> AgentRef | None:
    """An agent by address, local part or name (case-insensitive); None if not exactly one."""
    w = who.strip().strip("<>").lower()
    keys: tuple[Callable[[AgentRef], str], ...] = (
        lambda a: a.email.lower(),
        lambda a: a.email.lower().partition("@")[0],
        lambda a: a.name.lower(),
        lambda a: a.name.lower().split()[0] if a.name.split() else "",
    )
    for key in keys:
        found = [a for a in agents if key(a) == w]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return None
    return None


def _assign(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    who = _one_arg(arg, "an agent").strip()
    if who.lower() == "me":
        if ctx.actor is None:
            raise ValueError("'me' needs an agent: say who you are (--as)")
        return Command(name="assign", line=line, text=text, value=ctx.actor.lower())
    if who.lower() in ("none", "nobody", "-"):
        return Command(name="assign", line=line, text=text, value=None)
    agent = find_agent(who, ctx.agents)
    if agent is None:
        known = ", ".join(a.email for a in ctx.agents) or "none configured"
        raise ValueError(f"no single agent matches {who!r} (agents: {known}; or me, none)")
    return Command(name="assign", line=line, text=text, value=agent.email)


def _plus_minus(arg: str, what: str) -> tuple[list[str], list[str]]:
    if not arg:
        raise ValueError(f"needs {what} to add (+x or x) or remove (-x)")
    add: list[str] = []
    remove: list[str] = []
    for word in arg.replace(",", " ").split():
        target = remove if word.startswith("-") else add
        target.append(word.lstrip("+-"))
    return add, remove


def _tag(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    add, remove = _plus_minus(arg, "tags")
    bad = [t for t in [*add, *remove] if not _TAG.match(t)]
    if bad:
        raise ValueError(f"invalid tag {bad[0]!r} (letters, digits, . : / - _, up to 64)")
    return Command(name="tag", line=line, text=text, add=tuple(add), remove=tuple(remove))


def _cc(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    add, remove = _plus_minus(arg, "addresses")
    own = {a.lower() for a in ctx.own_addresses}
    for addr in [*add, *remove]:
        if not _EMAIL.match(addr):
            raise ValueError(f"{addr!r} is not an email address")
    for addr in add:
        local, _, domain = addr.lower().partition("@")
        if f"{local.partition('+')[0]}@{domain}" in own:
            raise ValueError(f"{addr} is a support address; it is never a watcher")
    return Command(
        name="cc",
        line=line,
        text=text,
        add=tuple(a.lower() for a in add),
        remove=tuple(a.lower() for a in remove),
    )


def _category(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    if not arg:
        raise ValueError("needs a category (or none)")
    if len(arg) > 128:
        raise ValueError("a category is at most 128 characters")
    value = None if arg.lower() in ("none", "-") else arg
    return Command(name="category", line=line, text=text, value=value)


def _note(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    return Command(name="note", line=line, text=text, value=arg or None)


def ticket_number(value: str, prefix: str) -> int | None:
    """'MD-7', '[md-7]', '#7' or '7' -> 7; None for anything else."""
    v = value.strip().strip("[]").lstrip("#")
    m = re.fullmatch(re.escape(prefix) + r"\s*[-#]\s*(\d{1,18})", v, re.I) or re.fullmatch(
        r"(\d{1,18})", v
    )
    return int(m.group(1)) if m else None


Parser = Callable[[int, str, str, CommandContext], Command]


def _ticket_command(name: str) -> Parser:
    def parse(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
        value = _one_arg(arg, f"a ticket like {ctx.ref_prefix}-7")
        number = ticket_number(value, ctx.ref_prefix)
        if number is None:
            raise ValueError(f"{value!r} is not a ticket like {ctx.ref_prefix}-7")
        return Command(name=name, line=line, text=text, value=value, target=number)

    return parse


def _problem(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    """#problem MD-7 links to that problem; #problem new opens one from this incident."""
    if arg.strip().lower() == "new":
        return Command(name="problem", line=line, text=text, value="new")
    return _ticket_command("problem")(line, text, arg, ctx)


def _known_error(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    if not arg:
        raise ValueError("needs the workaround (or none)")
    value = None if arg.lower() in ("none", "-") else arg[:4000]
    return Command(name="known-error", line=line, text=text, value=value)


_PARSERS: dict[str, Parser] = {
    "category": _category,
    "status": _status,
    "priority": _priority,
    "impact": _level("impact"),
    "urgency": _level("urgency"),
    "type": _type,
    "queue": _queue,
    "assign": _assign,
    "tag": _tag,
    "cc": _cc,
    "note": _note,
    "merge": _ticket_command("merge"),
    "link": _ticket_command("link"),
    "unlink": _ticket_command("unlink"),
    "problem": _problem,
    "known-error": _known_error,
    "kb": parse_kb,
    "kb-draft": parse_kb_draft,
    "schedule": parse_schedule,
    "implemented": parse_implemented,
    "failed": parse_failed,
    "ci": parse_ci,
    "broadcast": parse_broadcast,
}
