"""Ticket changes: status transitions and the effects of commands, each an event.

Mail commands, `maildesk ticket set/reply/note` and the scheduler all change tickets
through here, so every change is recorded the same way: an event with who (actor), how
(via: mail, cli, scheduler) and what (from, to), plus the notification it triggers.

Status life: new -> open on the first agent action; an agent's public reply -> pending
(waiting on the requester) unless a command says otherwise; a requester reply -> open;
resolved and closed tickets reopen on a requester reply within `[desk] reopen_window`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.config import Agent
from maildesk.notify import notices
from maildesk.store import repo
from maildesk.store.models import Message, Ticket
from maildesk.terms import REOPENABLE_STATUSES, Status, TicketType
from maildesk.tickets import broadcasts, changes, cis, levels, problems, sla
from maildesk.tickets.commands import Command, CommandError

log = logging.getLogger(__name__)

MAX_MERGE_DEPTH = 20


@dataclass(frozen=True)
class Actor:
    """Who changes a ticket, and through which channel."""

    email: str  # an agent's address, or "cli" / "scheduler" for an operator or a job
    via: str  # mail, cli, scheduler
    agent: Agent | None = None


@dataclass
class Applied:
    """What a set of commands did, in words for the receipt, plus a merge target."""

    changes: list[str] = field(default_factory=list)
    merged_into: Ticket | None = None
    status_set: bool = False


def resolve_merged(session: Session, ticket: Ticket) -> Ticket:
    """Follow merges to the ticket that now carries the conversation."""
    for _ in range(MAX_MERGE_DEPTH):
        if ticket.merged_into_id is None:
            return ticket
        ticket = session.get_one(Ticket, ticket.merged_into_id)
    return ticket


def set_status(
    app: App,
    session: Session,
    ticket: Ticket,
    status: str,
    actor: Actor,
    now: datetime,
    *,
    notify_requester: bool = True,
    reason: str | None = None,
) -> str | None:
    """Move a ticket to `status`; return a description, or None if it already was."""
    old = ticket.status
    if old == status:
        return None
    ticket.status, ticket.updated_at = status, now
    sla.status_changed(app, ticket, now)
    if status == Status.RESOLVED:
        ticket.resolved_at = now
    elif status == Status.CLOSED:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    else:
        ticket.closed_at = ticket.resolved_at = None
    kind = (
        "reopened" if old in REOPENABLE_STATUSES and status not in REOPENABLE_STATUSES else "status"
    )
    repo.add_event(
        session,
        ticket,
        kind,
        now,
        actor=actor.email,
        via=actor.via,
        **{"from": old, "to": status},
        **({"reason": reason} if reason else {}),
    )
    if status in REOPENABLE_STATUSES:
        _done(app, session, ticket, status, actor, now, notify=notify_requester, why=reason)
    ref = app.ref(ticket.id)
    log.info("%s status %s -> %s by %s (%s)", ref, old, status, actor.email, actor.via)
    return f"status: {old} -> {status}"


def _done(
    app: App,
    session: Session,
    ticket: Ticket,
    status: str,
    actor: Actor,
    now: datetime,
    *,
    notify: bool,
    why: str | None,
) -> None:
    """What a ticket's resolution (or closing) sets off, whichever path it came by: the
    all-clear of its broadcasts; a problem's incidents resolved; the requester told."""
    broadcasts.all_clear(app, session, ticket, {"actor": actor.email, "via": actor.via}, now)
    if status == Status.RESOLVED and ticket.type == TicketType.PROBLEM:
        problems.resolved(
            app,
            session,
            ticket,
            now,
            lambda t, why: set_status(
                app, session, t, Status.RESOLVED, actor, now, notify_requester=False, reason=why
            ),
        )
    elif status == Status.RESOLVED and notify:
        notices.to_requester(
            app,
            session,
            ticket,
            kind="resolved",
            template="requester/ticket_resolved",
            now=now,
            why=why or "",
        )


def first_agent_action(ticket: Ticket) -> str | None:
    """The status an agent's first touch implies: a new ticket becomes open."""
    return Status.OPEN if ticket.status == Status.NEW else None


def check(
    session: Session, ticket: Ticket, commands: Sequence[Command], app: App
) -> list[CommandError]:
    """Checks that need the database (ticket references); run before anything is applied."""
    errors = []
    for c in commands:
        if c.target is None:
            continue
        other = session.get(Ticket, c.target)
        ref = app.ref(c.target)
        if other is None:
            errors.append(CommandError(c.line, c.text, f"there is no ticket {ref}"))
        elif other.id == ticket.id:
            errors.append(CommandError(c.line, c.text, f"{ref} is this ticket"))
        elif c.name == "merge" and other.merged_into_id is not None:
            final = resolve_merged(session, other)
            errors.append(
                CommandError(
                    c.line, c.text, f"{ref} was merged into {app.ref(final.id)}; merge into that"
                )
            )
        elif c.name == "unlink" and all(o != other.id for o, _ in repo.links(session, ticket.id)):
            errors.append(CommandError(c.line, c.text, f"this ticket is not linked to {ref}"))
        elif c.name == "problem" and other.type != TicketType.PROBLEM:
            errors.append(CommandError(c.line, c.text, f"{ref} is a {other.type}, not a problem"))
    for c in commands:
        if c.name == "known-error" and ticket.type != TicketType.PROBLEM:
            errors.append(CommandError(c.line, c.text, "only a problem has a known error"))
    errors += changes.check(app, ticket, commands) + cis.check(app, ticket, commands)
    return errors + broadcasts.check(app, ticket, commands)


def apply(
    app: App,
    session: Session,
    ticket: Ticket,
    commands: Sequence[Command],
    actor: Actor,
    now: datetime,
    *,
    relayed: bool = False,
) -> Applied:
    """Apply checked commands in order (a merge last); `relayed`: a reply goes out too.
    `#ci` first (a `#schedule` of the same reply was checked with its CIs); a broadcast
    (all its lines as one) after the #ci and #type lines it may rely on, and before a
    #status that resolves the incident, so that the all-clear follows it."""
    applied = Applied()
    merge = next((c for c in commands if c.name == "merge"), None)
    said = next((c for c in commands if c.name == "broadcast"), None)
    order = {"ci": 0, "broadcast": 2, "status": 3}
    for c in sorted(commands, key=lambda c: order.get(c.name, 1)):
        if c.name in ("note", "merge", "broadcast"):
            if c is said:
                who = {"actor": actor.email, "via": actor.via}
                applied.changes += broadcasts.apply(app, session, ticket, commands, who, now)
            continue
        change = _apply_one(app, session, ticket, c, actor, now, relayed=relayed)
        applied.status_set |= c.name == "status"
        if change:
            applied.changes.append(change)
    if merge is not None and merge.target is not None:
        target = session.get_one(Ticket, merge.target)
        applied.changes.append(merge_into(app, session, ticket, target, actor, now))
        applied.merged_into = target
    if applied.changes:
        ticket.updated_at = now
    return applied


def _apply_one(
    app: App,
    session: Session,
    ticket: Ticket,
    c: Command,
    actor: Actor,
    now: datetime,
    *,
    relayed: bool,
) -> str | None:
    who = {"actor": actor.email, "via": actor.via}
    if c.name == "status" and c.value:
        return set_status(app, session, ticket, c.value, actor, now, notify_requester=not relayed)
    if c.name in ("priority", "queue", "type", "category"):
        old = getattr(ticket, c.name)
        if old == c.value:
            return None
        setattr(ticket, c.name, c.value)
        repo.add_event(session, ticket, c.name, now, **who, **{"from": old, "to": c.value})
        if c.name == "queue":
            sla.queue_changed(app, session, ticket, now)
        elif c.name == "priority":
            sla.refresh(app, ticket, now)
        return f"{c.name}: {old or 'none'} -> {c.value or 'none'}"
    if c.name in ("impact", "urgency") and c.value:
        return levels.set_level(app, session, ticket, c.name, c.value, actor, now)
    if c.name == "assign":
        return assign(app, session, ticket, c.value, actor, now)
    if c.name == "tag":
        tags = list(ticket.tags)
        added = [t for t in c.add if t not in tags]
        removed = [t for t in c.remove if t in tags]
        if not added and not removed:
            return None
        ticket.tags = [t for t in tags if t not in removed] + added
        repo.add_event(session, ticket, "tags", now, **who, added=added, removed=removed)
        return "tags: " + " ".join([*(f"+{t}" for t in added), *(f"-{t}" for t in removed)])
    if c.name == "cc":
        added = repo.add_watchers(session, ticket.id, list(c.add), actor.email, now)
        gone = repo.remove_watchers(session, ticket.id, list(c.remove))
        if not added and not gone:
            return None
        repo.add_event(session, ticket, "watchers", now, **who, added=added, removed=gone)
        return "watchers: " + " ".join([*(f"+{a}" for a in added), *(f"-{a}" for a in gone)])
    if c.name == "problem":
        problem = session.get(Ticket, c.target) if c.target is not None else None
        problem = problem or problems.open_problem(app, session, ticket, actor.email, now)
        return problems.link(app, session, ticket, problem, who, now)
    if c.name == "known-error":
        return problems.set_known_error(app, session, ticket, c.value, who, now)
    if c.name in changes.COMMANDS:
        moved = lambda s, why: set_status(app, session, ticket, s, actor, now, reason=why)  # noqa: E731
        return changes.apply_one(app, session, ticket, c, who, now, moved)
    if c.name == "ci":
        return cis.apply_command(app, session, ticket, c, who, now)
    if c.name in ("link", "unlink") and c.target is not None:
        other = session.get_one(Ticket, c.target)
        return link(app, session, ticket, other, actor, now, remove=c.name == "unlink")
    log.warning("%s: command %s had no effect", app.ref(ticket.id), c.text)
    return None


def assign(
    app: App,
    session: Session,
    ticket: Ticket,
    assignee: str | None,
    actor: Actor,
    now: datetime,
    *,
    reason: str | None = None,
) -> str | None:
    """Give the ticket to an agent (or nobody); the new assignee hears of it."""
    old = ticket.assignee
    if old == assignee:
        return None
    ticket.assignee = assignee
    repo.add_event(
        session,
        ticket,
        "assigned",
        now,
        actor=actor.email,
        via=actor.via,
        **{"from": old, "to": assignee},
        **({"reason": reason} if reason else {}),
    )
    agent = app.config.agent(assignee) if assignee else None
    if agent is not None and agent.email != actor.email:
        notices.to_agent(
            app,
            session,
            ticket,
            agent,
            kind="assigned",
            template="agent/ticket_assigned",
            answers=None,
            now=now,
            assigned_by=actor.email,
        )
    return f"assignee: {old or 'nobody'} -> {assignee or 'nobody'}"


def link(
    app: App,
    session: Session,
    ticket: Ticket,
    other: Ticket,
    actor: Actor,
    now: datetime,
    *,
    remove: bool = False,
) -> str | None:
    """Link two tickets: an incident to its problem, or any two as related."""
    ref, other_ref = app.ref(ticket.id), app.ref(other.id)
    who = {"actor": actor.email, "via": actor.via}
    if remove:
        if not repo.remove_link(session, ticket.id, other.id):
            return None
        repo.add_event(session, ticket, "unlinked", now, **who, ticket=other_ref)
        repo.add_event(session, other, "unlinked", now, **who, ticket=ref)
        return f"unlinked from {other_ref}"
    mine, theirs = _relations(ticket.type, other.type)
    if not repo.add_link(session, ticket.id, other.id, mine, theirs, now):
        return None
    repo.add_event(session, ticket, "linked", now, **who, relation=mine, ticket=other_ref)
    repo.add_event(session, other, "linked", now, **who, relation=theirs, ticket=ref)
    return f"linked to {other_ref} ({mine})"


def _relations(mine: str, theirs: str) -> tuple[str, str]:
    """What the other ticket is to this one, and this one to it."""
    if mine == "incident" and theirs == "problem":
        return "problem", "incident"
    if mine == "problem" and theirs == "incident":
        return "incident", "problem"
    return "related", "related"


def merge_into(
    app: App, session: Session, source: Ticket, target: Ticket, actor: Actor, now: datetime
) -> str:
    """Merge source into target: its messages move, its requester and watchers are kept as
    the target's watchers, and mail to the old ref threads into the target from now on."""
    ref, target_ref = app.ref(source.id), app.ref(target.id)
    notices.to_requester(
        app,
        session,
        source,
        kind="merged",
        template="requester/ticket_merged",
        now=now,
        merged_into={"ref": target_ref, "subject": target.subject},
    )
    keep = [source.requester.email, *repo.watchers(session, source.id)]
    keep = [e for e in keep if e != target.requester.email]
    kept = repo.add_watchers(session, target.id, keep, actor.email, now)
    moved = repo.move_messages(session, source.id, target.id)
    old = source.status
    source.status, source.merged_into_id = Status.MERGED, target.id
    source.closed_at = source.updated_at = target.updated_at = now
    sla.status_changed(app, source, now)
    who = {"actor": actor.email, "via": actor.via}
    repo.add_event(session, source, "merged", now, **who, into=target_ref, **{"from": old})
    repo.add_event(
        session, target, "merged", now, **who, source=ref, messages=moved, watchers_added=kept
    )
    log.info("%s merged into %s by %s (%d messages)", ref, target_ref, actor.email, moved)
    return f"merged into {target_ref} ({moved} messages moved)"


def store_reply_event(
    session: Session, ticket: Ticket, message: Message, actor: Actor, now: datetime, kind: str
) -> None:
    """The event for an agent's reply or note."""
    repo.add_event(
        session,
        ticket,
        kind,
        now,
        actor=actor.email,
        via=actor.via,
        message_id=message.message_id,
    )
