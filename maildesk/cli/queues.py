"""`maildesk queue move OLD NEW`: a queue's tickets go to another before the old one goes."""

from __future__ import annotations

import argparse
from typing import Any

from maildesk.app import App
from maildesk.cli.common import EX_OK, Parsers, operator, with_session
from maildesk.errors import InvalidRequest
from maildesk.store import tickets as store_tickets


def cmd_queue_move(args: argparse.Namespace) -> int:
    """Move every ticket of queue OLD (open or not) to queue NEW, which must be configured."""
    if args.old == args.new:
        raise InvalidRequest(f"queue move: {args.old!r} to itself moves nothing")
    actor = operator()

    def act(app: App, session: Any) -> tuple[int, int]:
        known = [q.name for q in app.config.queues]
        if args.new not in known:
            raise InvalidRequest(
                f"no queue {args.new!r} in the config (queues: {', '.join(known)})"
            )
        still_open = store_tickets.open_tickets_by_queue(session).get(args.old, 0)
        moved = store_tickets.move_queue(session, args.old, args.new, app.now(), actor=actor)
        return moved, still_open

    moved, still_open = with_session(args, act)
    if not moved:
        raise InvalidRequest(f"queue {args.old!r} has no tickets")
    print(f"moved {moved} tickets ({still_open} open) from queue {args.old!r} to {args.new!r}")
    return EX_OK


def add_queue(parsers: Parsers) -> None:
    """`maildesk queue move OLD NEW`."""
    queue = parsers.group("queue", "queue maintenance", "queue_command")
    sp = queue.add("move", cmd_queue_move, "move every ticket of one queue to another")
    sp.add_argument("old", metavar="OLD", help="the queue the tickets are in (may be gone)")
    sp.add_argument("new", metavar="NEW", help="a queue of the config that takes them")
