"""The configuration items a ticket is about: linked when its mail names them, by the
alert behind it, by a catalog request's CI field, or by an agent's `#ci NAME` (unlinked
by `#ci -NAME`). Every link and unlink is an event: `ci_linked` (with the CI's source and
services), `ci_unlinked`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.store import cis as store
from maildesk.store import repo
from maildesk.store.models import Ticket
from maildesk.tickets.commands import Command, CommandError

log = logging.getLogger(__name__)


def link(
    app: App,
    session: Session,
    ticket: Ticket,
    names: Iterable[str],
    source: str,
    now: datetime,
    *,
    actor: str = "system",
    via: str = "mail",
) -> list[str]:
    """Link the CIs (by name) to the ticket, an event each; the names newly linked."""
    inventory = app.config.inventory
    done = []
    for name in names:
        ci = inventory.get(name)
        services = ci.services if ci is not None else ()
        if store.link_ci(session, ticket, name, services, source, actor, now) is None:
            continue
        repo.add_event(
            session,
            ticket,
            "ci_linked",
            now,
            actor=actor,
            via=via,
            ci=name,
            source=source,
            services=list(services),
        )
        done.append(name)
    if done:
        log.info("%s: linked to %s (%s)", app.ref(ticket.id), ", ".join(done), source)
    return done


def check(app: App, ticket: Ticket, commands: Sequence[Command]) -> list[CommandError]:
    """`#ci NAME` must name a CI of the inventory; `#ci -NAME` one linked to the ticket."""
    inventory = app.config.inventory
    linked = [x.ci for x in ticket.ci_links]
    errors = []
    for c in (c for c in commands if c.name == "ci"):
        for word in c.add:
            if inventory.find(word) is None:
                errors.append(CommandError(c.line, c.text, _unknown(app, word)))
        for word in c.remove:
            if _linked_name(app, linked, word) is None:
                shown = ", ".join(linked) or "none"
                reason = f"this ticket is not linked to CI {word!r} (linked: {shown})"
                errors.append(CommandError(c.line, c.text, reason))
    return errors


def _unknown(app: App, word: str) -> str:
    inventory = app.config.inventory
    if not len(inventory):
        return f"no CI {word!r}: the inventory is empty ([cmdb] path)"
    close = inventory.close_names(word)
    hint = f"; close: {', '.join(close)}" if close else ""
    return f"no CI {word!r} in the inventory{hint} (`maildesk ci list` shows them all)"


def _linked_name(app: App, linked: Sequence[str], word: str) -> str | None:
    """The linked CI a word means: by the inventory's names and aliases, else by name."""
    ci = app.config.inventory.find(word)
    if ci is not None and ci.name in linked:
        return ci.name
    return next((n for n in linked if n.lower() == word.lower()), None)


def apply_command(
    app: App, session: Session, ticket: Ticket, c: Command, who: dict[str, str], now: datetime
) -> str | None:
    """Apply a checked `#ci`; what changed ("cis: +mail01 -mail02"), or None."""
    wanted = [ci.name for ci in map(app.config.inventory.find, c.add) if ci is not None]
    added = link(app, session, ticket, wanted, "agent", now, actor=who["actor"], via=who["via"])
    removed = []
    for word in c.remove:
        name = _linked_name(app, [x.ci for x in ticket.ci_links], word)
        if name is not None and store.unlink_ci(session, ticket, name):
            repo.add_event(session, ticket, "ci_unlinked", now, **who, ci=name)
            removed.append(name)
    if not added and not removed:
        return None
    return "cis: " + " ".join([*(f"+{n}" for n in added), *(f"-{n}" for n in removed)])


def planned(app: App, ticket: Ticket, commands: Sequence[Command]) -> dict[str, tuple[str, ...]]:
    """The CIs the ticket is linked to once these (checked) commands apply, each with its
    services: its links now, with the `#ci` lines among them taken in."""
    links = {x.ci: tuple(x.services or ()) for x in ticket.ci_links}
    for c in (c for c in commands if c.name == "ci"):
        for ci in filter(None, map(app.config.inventory.find, c.add)):
            links.setdefault(ci.name, ci.services)
        for word in c.remove:
            name = _linked_name(app, list(links), word)
            if name is not None:
                del links[name]
    return links
