"""[[queues]] and [[agents]]: the desk's queues (with the names they had before) and the
agents who work in them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maildesk.config.model import Agent, Queue
from maildesk.config.reader import Reader, parse_email


def read_queues(r: Reader, tables: list[dict[str, Any]], base: Path) -> list[Queue]:
    """[[queues]]: names unique, at most one default; none at all means one "general"."""
    queues: list[Queue] = []
    for i, t in enumerate(tables):
        name = t.get("name")
        place = f"[[queues]] '{name}'" if isinstance(name, str) else f"[[queues]] #{i + 1}"
        q = Queue(
            name=r.take(t, place, "name", str, required=True) or "",
            default=bool(r.take(t, place, "default", bool, False)),
            acknowledge=bool(r.take(t, place, "acknowledge", bool, True)),
            templates=r.existing_dir(
                place, "templates", base, r.take(t, place, "templates", str, None)
            ),
            renamed_from=_old_names(r, t, place),
        )
        r.done(t, place)
        if q.name in {x.name for x in queues}:
            r.problem(place, "duplicate queue name")
        queues.append(q)
    if not queues:
        queues.append(Queue(name="general", default=True, acknowledge=True))
    if sum(q.default for q in queues) > 1:
        r.problem("[[queues]]", "more than one queue has default = true")
    _check_renames(r, queues)
    return queues


def _old_names(r: Reader, t: dict[str, Any], place: str) -> tuple[str, ...]:
    """renamed_from = "old" or ["old", "older"]."""
    value = t.get("renamed_from")
    if isinstance(value, str):
        t.pop("renamed_from")
        return (value,)
    return r.strings(t, place, "renamed_from")


def _check_renames(r: Reader, queues: list[Queue]) -> None:
    """An old name belongs to one queue and is no longer a queue of its own."""
    names = {q.name for q in queues}
    claimed: dict[str, str] = {}
    for q in queues:
        place = f"[[queues]] '{q.name}' key 'renamed_from'"
        for old in q.renamed_from:
            if old in names:
                r.problem(place, f"queue {old!r} still exists; remove it or its renamed_from")
            elif old in claimed:
                r.problem(place, f"{old!r} is also the old name of queue {claimed[old]!r}")
            claimed.setdefault(old, q.name)


def read_agents(r: Reader, tables: list[dict[str, Any]], queue_names: set[str]) -> list[Agent]:
    """[[agents]]: address, name and the queues each works in (which must exist)."""
    agents: list[Agent] = []
    for i, t in enumerate(tables):
        email = t.get("email")
        place = f"[[agents]] '{email}'" if isinstance(email, str) else f"[[agents]] #{i + 1}"
        a = Agent(
            email=r.take(t, place, "email", parse_email, required=True) or "",
            name=r.take(t, place, "name", str, "") or "",
            queues=r.strings(t, place, "queues"),
        )
        for q in a.queues:
            if q not in queue_names:
                r.problem(f"{place} key 'queues'", f"unknown queue {q!r}")
        r.done(t, place)
        agents.append(a)
    return agents
