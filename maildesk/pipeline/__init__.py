"""The one pipeline: a stored raw message becomes ticket changes, in one transaction.

Ingest edges (SMTP, `deliver`, `import`, IMAP) call `store_raw` and answer their peer once it
has committed; then `process` parses, guards, threads, routes and writes the ticket, its
events and its notifications (outbox rows) together. A message that fails anywhere in here
is quarantined with the reason; its raw bytes are never lost.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.config import Agent
from maildesk.errors import MessageTooComplex, NotMail
from maildesk.notify import notices
from maildesk.parse.parser import ParsedMessage, parse_message
from maildesk.parse.reply import new_text
from maildesk.routing.bounce import Bounce
from maildesk.routing.bounce import recognise as recognise_bounce
from maildesk.routing.guard import automatic, is_own_loop, may_auto_reply
from maildesk.routing.proof import authentication_results
from maildesk.routing.rules import STRATEGIES, decision_json, route
from maildesk.routing.thread import ThreadMatch, reply_tokens, strip_ref_tag, thread_message, ties
from maildesk.store import repo
from maildesk.store.db import transaction, write_gate
from maildesk.store.models import Attachment, Contact, Message, RawMessage, Ticket
from maildesk.terms import REOPENABLE_STATUSES, RawStatus, Status
from maildesk.tickets import lifecycle, sla
from maildesk.tickets.lifecycle import Actor
from maildesk.tickets.replies import agent_reply

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
# A write transaction of the pipeline commits once it has been open this long: several
# messages share a commit (one disk sync), and SMTP never waits long for the write lock.
WRITE_BUDGET = 0.015
IMPORT_BUDGET = 0.2  # an import batches more: nothing waits on it
MAX_WATCHERS = 20  # CCs kept as watchers of one ticket, at most

# How raw mail is added in the caller's transaction: (session, raw, origin, now) -> raw id.
# Raw mail enters the store only through the inbox (maildesk.ingest.inbox.save_raw).
SaveRaw = Callable[[Session, bytes, str, datetime], int]


@dataclass(frozen=True)
class Outcome:
    """What processing one raw message did."""

    raw_id: int
    # created, appended, reopened, followup, linked, duplicate, ignored, dropped, bounce,
    # quarantined, skipped, relayed, note, commands, rejected
    status: str
    ticket_id: int | None = None
    ref: str | None = None
    reason: str = ""


def import_many(
    app: App,
    raws: Iterable[bytes],
    *,
    save: SaveRaw,
    origin: str = "import",
    budget: float = IMPORT_BUDGET,
) -> Iterator[str]:
    """Store and process messages from a mailbox, several per transaction; yield each one's
    status. Idempotent: a message whose bytes or Message-ID are already stored is skipped
    ("already imported"). Each message is stored raw (by `save`, the inbox's) in the same
    transaction that runs it through the pipeline (in a savepoint, so a failure quarantines
    only it); nothing is held in memory beyond the message at hand.
    """
    app = app.pinned()
    stream = iter(raws)
    pending: bytes | None = next(stream, None)
    while pending is not None:
        statuses: list[str] = []
        with transaction(app.sessions) as session:
            started = time.monotonic()
            while pending is not None:
                statuses.append(_import_one(app, session, pending, origin, save))
                pending = next(stream, None)
                if time.monotonic() - started > budget:
                    break
        yield from statuses


def _import_one(app: App, session: Session, raw: bytes, origin: str, save: SaveRaw) -> str:
    if repo.raw_exists(session, hashlib.sha256(raw).hexdigest()):
        return "already imported"
    work = _parse(0, raw)
    if work.msg is not None and repo.message_exists(session, work.msg.message_id):
        return "already imported"
    raw_id = save(session, raw, origin, app.now())
    outcome = _run(app, session, replace(work, raw_id=raw_id))
    if outcome.status == "quarantined":
        log.warning("raw message %s quarantined: %s", raw_id, outcome.reason)
    return outcome.status


def process_pending(app: App, limit: int = 100) -> list[Outcome]:
    """Process stored messages still pending, oldest first (crash recovery and batching)."""
    with transaction(app.sessions, readonly=True) as session:
        ids = repo.pending_raw_ids(session, limit)
    return process_many(app, ids)


def process(app: App, raw_id: int) -> Outcome:
    """Run the pipeline for one stored message; quarantine it if anything goes wrong."""
    return process_many(app, [raw_id])[0]


@dataclass(frozen=True)
class _Work:
    """A stored message read and parsed (outside any write transaction)."""

    raw_id: int
    raw: bytes
    msg: ParsedMessage | None
    error: Exception | None = None


def process_many(
    app: App, raw_ids: Sequence[int], *, budget: float = WRITE_BUDGET
) -> list[Outcome]:
    """Run the pipeline for stored messages, in order, committing several per transaction.

    Messages are read and parsed first, outside any write transaction (on SQLite, mail
    being accepted over SMTP never waits for a parse). Each one then runs in a savepoint
    of a write transaction that is committed once it has been open for `budget` seconds:
    fewer commits (disk syncs), and a message that fails rolls back only itself and is
    quarantined in the same transaction. A store that is unavailable leaves the rest
    pending for the next run.
    """
    app = app.pinned()  # a config reload mid-batch does not change these messages' rules
    with transaction(app.sessions, readonly=True) as session:
        stored = dict(repo.raw_bytes(session, raw_ids))
    work = [_parse(raw_id, stored.get(raw_id)) for raw_id in raw_ids]
    outcomes: list[Outcome] = []
    gate = write_gate(app.sessions)
    while len(outcomes) < len(work):
        with transaction(app.sessions) as session:
            started = time.monotonic()
            for item in work[len(outcomes) :]:
                outcomes.append(_run(app, session, item))
                if time.monotonic() - started > budget or (gate and gate.urgent_waiting):
                    break  # commit now: mail being accepted goes next
    for outcome in outcomes:
        if outcome.status == "quarantined":
            log.warning("raw message %s quarantined: %s", outcome.raw_id, outcome.reason)
    return outcomes


def _parse(raw_id: int, raw: bytes | None) -> _Work:
    if raw is None:
        return _Work(raw_id, b"", None)  # no such stored message: nothing to do
    try:
        return _Work(raw_id, raw, parse_message(raw))
    except (NotMail, MessageTooComplex) as exc:
        return _Work(raw_id, raw, None, exc)
    except Exception as exc:  # parsing is defensive; anything left is a bug to see
        log.exception("raw message %s could not be parsed", raw_id)
        return _Work(raw_id, raw, None, exc)


def _run(app: App, session: Session, item: _Work) -> Outcome:
    """One message in its own savepoint; a failure rolls back to it and quarantines."""
    raw_id = item.raw_id
    if item.msg is None:
        error = item.error
        if error is None:
            return Outcome(raw_id, "skipped", reason="no such stored message")
        reason = (
            f"not an email message: {error}"
            if isinstance(error, NotMail)
            else str(error)
            if isinstance(error, MessageTooComplex)
            else f"{type(error).__name__}: {error}"
        )
        return _quarantined(app, session, raw_id, reason)
    for attempt in (1, 2):
        try:
            with session.begin_nested():
                return _process(app, session, raw_id, item.msg, item.raw)
        except IntegrityError as exc:
            # Another worker stored the same Message-ID at the same moment: run again,
            # and this time the message is a duplicate.
            if attempt == 2:
                return _quarantined(app, session, raw_id, f"database integrity error: {exc.orig}")
        except NoSender as exc:
            return _quarantined(app, session, raw_id, str(exc))
        except DBAPIError as exc:
            if _refused(exc):
                reason = f"the database refused this message: {exc.orig or exc}"
                return _quarantined(app, session, raw_id, reason)
            raise  # the store itself failed: the transaction goes, the rest stays pending
        except Exception as exc:
            log.exception("raw message %s failed in the pipeline", raw_id)
            return _quarantined(app, session, raw_id, f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


def _quarantined(app: App, session: Session, raw_id: int, reason: str) -> Outcome:
    session.execute(
        update(RawMessage)
        .where(RawMessage.id == raw_id, RawMessage.status == RawStatus.PENDING)
        .values(status=RawStatus.QUARANTINED, reason=reason[:4000], processed_at=app.now())
        .execution_options(synchronize_session=False)
    )
    return Outcome(raw_id, "quarantined", reason=reason)


class NoSender(Exception):
    """Neither a From address nor an envelope sender: nobody to answer (quarantined)."""


def _refused(exc: DBAPIError) -> bool:
    """A database error about this message's data (a DataError, PostgreSQL class 22; or
    class 54, a program limit such as an index row too large), not about the database:
    retrying would block the queue."""
    if isinstance(exc, DataError) and not exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return str(sqlstate).startswith("54")


@dataclass(frozen=True)
class Sender:
    """Who wrote a message on an existing ticket, as far as it can be proven."""

    kind: str  # agent, unverified-agent, requester, watcher, stranger
    agent: Agent | None = None  # a proven agent
    proof: str = ""  # how the agent was proven
    doubt: str = ""  # the From claims an agent but nothing proves it: why not believed


def _process(
    app: App, session: Session, raw_id: int, msg: ParsedMessage, raw_bytes: bytes
) -> Outcome:
    now = app.now()
    raw = repo.claim_raw(session, raw_id, now)
    if raw is None:
        return Outcome(raw_id, "skipped", reason="not pending (already processed)")
    desk = app.config.desk

    if is_own_loop(msg, desk.address):
        raw.status, raw.reason = "ignored", "our own notification came back (loop marker)"
        log.info("ignored %s (raw %s): %s", msg.message_id, raw_id, raw.reason)
        return Outcome(raw_id, "ignored", reason=raw.reason)

    index = repo.StoreThreadIndex(session, app.tokens, sender=msg.from_addr)
    existing = index.ticket_for_message_ids([msg.message_id])
    if existing is not None:
        raw.status, raw.ticket_id = "duplicate", existing
        raw.reason = f"Message-ID {msg.message_id} already stored on {app.ref(existing)}"
        log.info("duplicate %s for %s (raw %s)", msg.message_id, app.ref(existing), raw_id)
        return Outcome(raw_id, "duplicate", existing, app.ref(existing), raw.reason)

    bounce = recognise_bounce(msg, raw_bytes, raw.envelope_from)
    if bounce is not None:
        return _bounced(app, session, raw, msg, bounce, now)

    requester = msg.from_addr or (raw.envelope_from or "").lower()
    contact = repo.contact(session, requester)
    if contact is not None and msg.from_name and not contact.name:
        contact.name = msg.from_name
    if contact is not None and contact.bounced_at is not None:
        contact.bounced_at = contact.bounce_reason = None  # mail from it proves it receives
    if "@" not in requester:
        raise NoSender("message has no usable From address or envelope sender")

    match = thread_message(
        msg,
        index,
        prefix=desk.ref_prefix,
        recipients=raw.envelope_to,
        desk_addresses=app.config.own_addresses,
    )
    if match.ticket_id is None:
        return _new_ticket(app, session, raw, msg, requester, contact, now)
    named = session.get_one(Ticket, match.ticket_id)
    ticket = lifecycle.resolve_merged(session, named)
    sender = _sender(app, session, ticket, named, msg, raw)
    if sender.kind == "agent":
        return _agent_mail(app, session, raw, msg, ticket, match, sender, now)
    tied_by = ties(
        msg,
        index,
        {named.id, ticket.id},
        recipients=raw.envelope_to,
        desk_addresses=app.config.own_addresses,
    )
    if match.via in ("in-reply-to", "references"):
        tied_by |= {"headers"}
    elif match.via == "reply-token":
        tied_by |= {"reply-token"}
    tied = bool(tied_by)
    if (
        not tied
        and sender.kind in ("stranger", "unverified-agent")
        and app.config.threading.subject_ref_from_strangers == "new-ticket"
    ):
        if sender.doubt:
            reason = (
                f"the subject names {app.ref(named.id)}, but {sender.doubt}, and neither "
                "In-Reply-To/References nor a reply token ties the mail to it"
            )
        else:
            reason = (
                f"the subject names {app.ref(named.id)}, but {requester} is not its "
                "requester, a watcher or an agent, and neither In-Reply-To/References nor a "
                "reply token ties the mail to it"
            )
        return _new_ticket(
            app, session, raw, msg, requester, contact, now, related=(ticket, reason)
        )
    if sender.kind == "stranger":
        # Someone not on the ticket holding one of its Message-IDs or its reply token (a
        # forward, a mailing list), or naming it with "append": recorded, changes nothing,
        # whatever the ticket's status or the reopen window.
        return _append(app, session, raw, msg, ticket, match, sender, now, tied_by=tied_by)
    if ticket.status in REOPENABLE_STATUSES:
        since = ticket.closed_at or ticket.resolved_at or ticket.updated_at
        if now - since > desk.reopen_window:
            reason = f"reply to a ticket {ticket.status} longer than the reopen window"
            return _new_ticket(
                app,
                session,
                raw,
                msg,
                requester,
                contact,
                now,
                related=(ticket, reason),
                follow_up=True,
            )
    return _append(app, session, raw, msg, ticket, match, sender, now, tied_by=tied_by)


def _sender(
    app: App, session: Session, ticket: Ticket, named: Ticket, msg: ParsedMessage, raw: RawMessage
) -> Sender:
    """Classify the sender; an agent only with a proof (see maildesk.routing.proof)."""
    config = app.config
    address = msg.from_addr
    agent = config.agent(address) if address else None
    if agent is not None:
        tokens = [
            app.tokens.verify(t, agent.email)
            for t in reply_tokens([*raw.envelope_to, *msg.to, *msg.cc], config.own_addresses)
        ]
        mine = {ticket.id, named.id}
        for token in tokens:
            if token is not None and token.role == "agent" and token.ticket_id in mine:
                return Sender("agent", agent, proof="the ticket's agent reply token")
        auth = authentication_results(
            msg.raw_headers, config.security.trusted_authserv_ids, address
        )
        if auth.passed:
            return Sender("agent", agent, proof=auth.detail)
        others = sorted(
            {
                app.ref(t.ticket_id)
                for t in tokens
                if t is not None and t.role == "agent" and t.ticket_id not in mine
            }
        )
        why = (
            f"it carries the agent reply token of {', '.join(others)}, not of this ticket"
            if others
            else "it has neither this ticket's agent reply token nor a trusted "
            f"Authentication-Results pass{' (' + auth.detail + ')' if auth.detail else ''}"
        )
        if address == ticket.requester.email:
            return Sender("requester")  # an agent writing on their own ticket, as requester
        doubt = f"From claims agent {agent.email}, but {why}"
        return Sender("unverified-agent", doubt=doubt)
    if address == ticket.requester.email:
        return Sender("requester")
    if address in repo.watchers(session, ticket.id):
        return Sender("watcher")
    return Sender("stranger")


def _new_ticket(
    app: App,
    session: Session,
    raw: RawMessage,
    msg: ParsedMessage,
    requester: str,
    known: Contact | None,
    now: datetime,
    *,
    related: tuple[Ticket, str] | None = None,
    follow_up: bool = False,
) -> Outcome:
    config = app.config
    flood_limit = config.notify.new_tickets_per_hour
    if flood_limit and repo.tickets_opened_since(session, known, now - HOUR) >= flood_limit:
        raw.status = "flood"
        raw.reason = (
            f"{requester} opened {flood_limit} tickets within the last hour "
            "([notify] new_tickets_per_hour); held, not ticketed"
        )
        log.warning("flood from %s: %s (raw %s) held", requester, msg.message_id, raw.id)
        return Outcome(raw.id, "flood", reason=raw.reason)
    decision = route(
        msg,
        config.rules,
        config.default_queue.name,
        config.route_context(now, raw.envelope_to),
        matrix=config.priority_matrix,
    )
    if decision.dropped_by is not None:
        raw.status = "spam"
        raw.reason = (
            f"dropped by rule {decision.dropped_by!r} (matched: {', '.join(decision.matched)})"
        )
        log.info("dropped %s (raw %s): %s", msg.message_id, raw.id, raw.reason)
        return Outcome(raw.id, "dropped", reason=raw.reason)
    assignee = decision.assignee
    if assignee in STRATEGIES:
        candidates = [a.email for a in config.agents_of(decision.queue)]
        assignee = repo.pick_agent(session, assignee, candidates)
    contact = known or repo.new_contact(session, requester, msg.from_name, now)
    ticket = Ticket(
        requester=contact,
        subject=strip_ref_tag(msg.subject, config.desk.ref_prefix) or "(no subject)",
        status=Status.NEW,
        priority=decision.priority,
        queue=decision.queue,
        type=decision.type,
        category=decision.category,
        assignee=assignee,
        tags=list(decision.tags),
        reply_token=secrets.token_hex(10),  # legacy column; tokens are HMACs now
        created_at=now,
        updated_at=now,
        parent_id=related[0].id if related and follow_up else None,
    )
    sla.started(app, ticket, decision.matched, now)
    session.add(ticket)
    session.flush()
    ref = app.ref(ticket.id)
    inbound = _store_message(session, ticket, raw, msg, now)
    repo.add_event(
        session, ticket, "created", now, actor=requester, message_id=msg.message_id, ref=ref
    )
    repo.add_event(session, ticket, "routed", now, **decision_json(decision, assignee))
    _add_cc_watchers(app, session, ticket, msg, requester, now)
    if related is not None:
        old, reason = related
        mine, theirs = ("follow-up-of", "followed-up-by") if follow_up else ("mentions", "related")
        old_ref = app.ref(old.id)
        repo.add_event(session, ticket, "linked", now, relation=mine, ticket=old_ref, reason=reason)
        repo.add_event(session, old, "linked", now, relation=theirs, ticket=ref, reason=reason)
        if not follow_up:
            repo.add_link(session, ticket.id, old.id, "related", "related", now)
    notices.ticket_created(app, session, ticket, inbound, msg, decision, now)
    raw.ticket_id = ticket.id
    log.info("created %s from %s (raw %s) in queue %s", ref, msg.message_id, raw.id, ticket.queue)
    status = "created" if related is None else "followup" if follow_up else "linked"
    return Outcome(raw.id, status, ticket.id, ref, related[1] if related else "")


def _add_cc_watchers(
    app: App,
    session: Session,
    ticket: Ticket,
    msg: ParsedMessage,
    requester: str,
    now: datetime,
    *,
    unproven: str = "",
) -> None:
    """The requester's CCs (never the desk's own addresses or agents) watch the ticket.

    On an existing ticket only from mail proven the requester's (`unproven` says why this
    one is not), and never one an agent removed (`#cc -x`) until an agent adds them back:
    each address held back is recorded with the reason.
    """
    own = app.config.own_addresses
    present = set(repo.watchers(session, ticket.id))
    candidates = [
        a
        for a in dict.fromkeys((*msg.to, *msg.cc))
        if a != requester
        and a not in present
        and f"{a.partition('@')[0].partition('+')[0]}@{a.partition('@')[2]}" not in own
        and app.config.agent(a) is None
    ]
    if not candidates:
        return
    if unproven:
        _watchers_held(app, session, ticket, requester, candidates, unproven, now)
        return
    removed = repo.removed_watchers(session, ticket.id)
    if held := [a for a in candidates if a in removed]:
        reason = "removed by an agent; only an agent's #cc +address adds them back"
        _watchers_held(app, session, ticket, requester, held, reason, now)
        candidates = [a for a in candidates if a not in removed]
    room = MAX_WATCHERS - len(present)
    added = repo.add_watchers(session, ticket.id, candidates[: max(room, 0)], requester, now)
    if added:
        repo.add_event(session, ticket, "watchers", now, actor=requester, added=added, removed=[])


def _watchers_held(
    app: App,
    session: Session,
    ticket: Ticket,
    requester: str,
    addresses: list[str],
    reason: str,
    now: datetime,
) -> None:
    repo.add_event(
        session,
        ticket,
        "watchers_not_added",
        now,
        actor=requester,
        addresses=addresses,
        reason=reason,
    )
    log.info(
        "%s: CCs %s not added as watchers: %s", app.ref(ticket.id), ", ".join(addresses), reason
    )


def _requester_unproven(app: App, msg: ParsedMessage, tied_by: frozenset[str]) -> str:
    """Why mail with the requester's From is not proven theirs ("" if it is).

    Proof is the ticket's reply token in a recipient (mailed only to the requester and the
    watchers), or a trusted Authentication-Results pass for the requester's domain. A
    matching In-Reply-To/References is not: a Message-ID travels with every forward.
    """
    if "reply-token" in tied_by:
        return ""
    address = msg.from_addr
    auth = authentication_results(
        msg.raw_headers, app.config.security.trusted_authserv_ids, address
    )
    if auth.passed:
        return ""
    how = (
        "In-Reply-To/References (a Message-ID travels with every forward)"
        if "headers" in tied_by
        else "its subject tag"
    )
    return (
        f"the mail is tied to the ticket only by {how}, not by the requester's reply token "
        "or a trusted Authentication-Results pass, so its From is not proven; an agent can "
        "add them with #cc +address"
    )


def _append(
    app: App,
    session: Session,
    raw: RawMessage,
    msg: ParsedMessage,
    ticket: Ticket,
    match: ThreadMatch,
    sender: Sender,
    now: datetime,
    *,
    tied_by: frozenset[str],
) -> Outcome:
    """A requester, watcher or anyone else (a stranger, a forged agent) writes on a ticket.

    `tied_by`: what besides its subject tag ties the mail to the ticket (see thread.ties).
    Only the requester's proven mail adds its CCs as watchers; a stranger's mail and mail
    claiming an agent's From without proof never change the ticket: they are flagged, and
    the agents' notice shows the flag.
    """
    ref = app.ref(ticket.id)
    text = new_text(msg.body_text) or msg.body_text
    inbound = _store_message(session, ticket, raw, msg, now, text=text)
    automatic = may_auto_reply(msg, app.config.own_addresses)
    extra = {"automatic": automatic.reason} if not automatic.allowed else {}
    _message_event(session, ticket, msg, match, sender.kind, now, **extra)
    flags: list[str] = []
    reason = ""
    if sender.doubt:
        flags.append(f"{sender.doubt}. Treat it as written by the requester side")
        repo.add_event(
            session,
            ticket,
            "sender_unverified",
            now,
            actor=msg.from_addr,
            message_id=msg.message_id,
            reason=sender.doubt,
        )
        log.warning("%s: %s (raw %s)", ref, sender.doubt, raw.id)
    stranger = sender.kind == "stranger"
    if stranger:
        who = inbound.from_addr
        how = (
            "its reply token"
            if "reply-token" in tied_by
            else "In-Reply-To/References"
            if tied_by
            else "its subject tag alone ([threading] subject_ref_from_strangers = append)"
        )
        reason = f"{who} is not its requester, a watcher or an agent; tied to it by {how}"
        flags.append(
            f"{who} is not on {ref} (not its requester, a watcher or an agent): the mail "
            "changed nothing, and your reply does not go to them"
        )
        repo.add_event(
            session, ticket, "stranger", now, actor=who, message_id=msg.message_id, reason=reason
        )
        log.warning("%s: %s (%s, raw %s)", ref, reason, msg.message_id, raw.id)
    if sender.kind == "requester":
        unproven = _requester_unproven(app, msg, tied_by)
        _add_cc_watchers(app, session, ticket, msg, ticket.requester.email, now, unproven=unproven)
    status, reopened = "appended", False
    actor = Actor(msg.from_addr, "mail")
    if not stranger:
        ticket.updated_at = now  # a stranger's mail does not even touch the ticket
    if not automatic.allowed:
        # An out-of-office or other automatic answer is kept, but it does not reopen the
        # ticket or page anyone.
        notices.suppressed(
            app, session, ticket, "agent_requester_reply", f"automatic: {automatic.reason}", now
        )
    elif flags:
        # A forged agent From or a stranger changes nothing; the agents are warned.
        notices.requester_replied(
            app, session, ticket, inbound, msg, now, reopened=False, flags=flags
        )
    else:
        if ticket.status not in (Status.NEW, Status.OPEN):
            reopened = ticket.status in REOPENABLE_STATUSES
            lifecycle.set_status(app, session, ticket, Status.OPEN, actor, now)
            status = "reopened" if reopened else status
        notices.requester_replied(
            app, session, ticket, inbound, msg, now, reopened=reopened, flags=flags
        )
    raw.ticket_id = ticket.id
    log.info("%s %s to %s via %s (raw %s)", status, msg.message_id, ref, match.via, raw.id)
    return Outcome(raw.id, status, ticket.id, ref, reason)


def _message_event(
    session: Session,
    ticket: Ticket,
    msg: ParsedMessage,
    match: ThreadMatch,
    sender: str,
    now: datetime,
    **extra: str,
) -> None:
    """The event of a message on an existing ticket: who, how it threaded, as whom."""
    repo.add_event(
        session,
        ticket,
        "message",
        now,
        actor=msg.from_addr,
        message_id=msg.message_id,
        threaded_by=match.via,
        detail=match.detail,
        sender=sender,
        **extra,
    )


def _agent_mail(
    app: App,
    session: Session,
    raw: RawMessage,
    msg: ParsedMessage,
    ticket: Ticket,
    match: ThreadMatch,
    sender: Sender,
    now: datetime,
) -> Outcome:
    """A proven agent's reply: commands, an internal note, or a reply to relay."""
    assert sender.agent is not None
    text = new_text(msg.body_text)
    machine = automatic(msg)
    if machine is not None:
        # An agent's out-of-office answer is kept for the record, never relayed or obeyed.
        _store_message(session, ticket, raw, msg, now, kind="agent_auto", internal=True, text=text)
        _message_event(session, ticket, msg, match, "agent", now, automatic=machine)
        raw.ticket_id = ticket.id
        return Outcome(raw.id, "appended", ticket.id, app.ref(ticket.id), machine)
    inbound = _store_message(session, ticket, raw, msg, now, kind="agent_reply", text=text)
    _message_event(session, ticket, msg, match, "agent", now, proof=sender.proof)
    actor = Actor(sender.agent.email, "mail", sender.agent)
    result = agent_reply(app, session, ticket, actor, inbound, text, now)
    raw.ticket_id = ticket.id
    ref = app.ref(ticket.id)
    return Outcome(raw.id, result.status, ticket.id, ref, "; ".join(result.errors))


def _bounced(
    app: App, session: Session, raw: RawMessage, msg: ParsedMessage, bounce: Bounce, now: datetime
) -> Outcome:
    """A bounce goes on the ticket of the message it returns, never on a ticket of its own."""
    original = repo.bounced_message(session, bounce.quoted_ids)
    what = "hard bounce" if bounce.permanent else "delivery delay/soft bounce"
    if original is None:
        raw.status = "bounce"
        raw.reason = f"{what} for a message that is not on any ticket ({bounce.diagnostic[:200]})"
        log.info("bounce %s (raw %s) matches no ticket: kept, no ticket", msg.message_id, raw.id)
        return Outcome(raw.id, "bounce", reason=raw.reason)
    ticket = session.get_one(Ticket, original.ticket_id)
    recipients = bounce.recipients or tuple(original.to)
    _store_message(session, ticket, raw, msg, now, kind="bounce", internal=True)
    repo.add_event(
        session,
        ticket,
        "bounce",
        now,
        actor=msg.from_addr or "mailer-daemon",
        original=original.message_id,
        recipients=list(recipients),
        permanent=bounce.permanent,
        status=bounce.status,
        diagnostic=bounce.diagnostic,
        standard=bounce.standard,
    )
    if bounce.permanent:
        repo.mark_bouncing(session, recipients, bounce.diagnostic or what, now)
    raw.ticket_id = ticket.id
    ref = app.ref(ticket.id)
    log.info("%s for %s on %s: %s", what, ", ".join(recipients), ref, bounce.diagnostic[:200])
    return Outcome(raw.id, "bounce", ticket.id, ref, f"{what} for {', '.join(recipients)}")


def _store_message(
    session: Session,
    ticket: Ticket,
    raw: RawMessage,
    msg: ParsedMessage,
    now: datetime,
    *,
    kind: str = "mail",
    internal: bool = False,
    text: str | None = None,
) -> Message:
    """Store an inbound message; `text` is its new text when it is a reply (else the body)."""
    message = Message(
        ticket_id=ticket.id,
        raw_id=raw.id,
        direction="in",
        kind=kind,
        message_id=msg.message_id,
        in_reply_to=msg.in_reply_to[0] if msg.in_reply_to else None,
        from_addr=msg.from_addr or (raw.envelope_from or ""),
        from_name=msg.from_name,
        to=list(msg.to),
        cc=list(msg.cc),
        subject=msg.subject,
        body_text=msg.body_text if text is None else text,
        body_html=msg.body_html,
        internal=internal,
        created_at=now,
    )
    message.attachments = [
        Attachment(
            filename=a.filename,
            content_type=a.content_type,
            size=a.size,
            content_id=a.content_id,
            content=a.content,
        )
        for a in msg.attachments
    ]
    session.add(message)
    return message
