"""Back-pressure: past `[smtp] max_backlog` stored messages still pending, the ingest edges
defer new mail (SMTP and LMTP answer 451 4.3.2 to DATA, `maildesk deliver` exits 75), so
senders keep it in their queues and retry, instead of the backlog growing without limit.

Counting the pending rows for every message would cost a query each; `Backlog` keeps the
count in memory instead: what the edge stores itself is added as it commits, and the count
is read again from the store at most every REFRESH seconds, off the event loop and without
any DATA waiting for it (mail the pipeline finished, or another process stored, shows
then). One log line when deferring starts and one when it ends, not one per message.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from maildesk.errors import StoreUnavailable
from maildesk.ingest.inbox import Storage, pending_count
from maildesk.metrics import Metrics

log = logging.getLogger(__name__)

REFRESH = 0.5  # seconds: the longest the count goes without a look at the store
DEFER_REPLY = "451 4.3.2 Too much mail waiting to be processed, please try again later"


class Backlog:
    """The pending backlog against its bound, for the edges of one daemon (one event loop).

    `count(cap)` reads the pending count from the store (up to cap; it may raise
    StoreUnavailable); `limit()` is `[smtp] max_backlog` as configured now (0: no bound).
    """

    def __init__(
        self,
        count: Callable[[int], int],
        limit: Callable[[], int],
        *,
        metrics: Metrics | None = None,
        refresh: float = REFRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count = count
        self._limit = limit
        self._metrics = metrics
        self._refresh = refresh
        self._clock = clock
        self.pending = 0
        self._counted_at = -math.inf
        self._counting: asyncio.Task[None] | None = None
        self.deferring = False

    async def refresh(self) -> None:
        """Read the count from the store now (a store that cannot say keeps the old one)."""
        limit = self._limit()
        self._counted_at = self._clock()
        try:
            self.pending = await asyncio.to_thread(self._count, max(limit, 1))
        except StoreUnavailable as exc:
            log.warning("backlog not counted, store unavailable: %s", exc)
        except Exception:  # a count that fails must not take the listener with it
            log.exception("backlog not counted")
        self._update(limit)

    def stored(self, count: int = 1) -> None:
        """Count messages this daemon has just committed."""
        self.pending += count

    def refusal(self, source: str) -> str | None:
        """The 451 for a DATA now (and count it), or None if the backlog has room."""
        self._look_again()
        if not self._update(self._limit()):
            return None
        if self._metrics is not None:
            self._metrics.deferred(source, "backlog")
        return DEFER_REPLY

    def _update(self, limit: int) -> bool:
        """Whether to defer now; logs when that changes."""
        full = backlog_full(self.pending, limit)
        if full != self.deferring:
            self.deferring = full
            if full:
                log.warning(
                    "%d stored messages pending (max_backlog %d): deferring new mail with 451",
                    self.pending,
                    limit,
                )
            else:
                log.warning("backlog below max_backlog again (%d pending): accepting", self.pending)
        return full

    def _look_again(self) -> None:
        """Start a count in the background if the last is older than REFRESH seconds."""
        if self._counting is not None and not self._counting.done():
            return
        if self._clock() - self._counted_at < self._refresh:
            return
        self._counting = asyncio.get_running_loop().create_task(self.refresh())


def backlog_full(pending: int, limit: int) -> bool:
    """Whether `pending` stored messages are at or past `limit` (0: never)."""
    return limit > 0 and pending >= limit


def over_limit(storage: Storage, limit: int) -> int | None:
    """The pending count if it is at or past `limit` (0: no limit), else None; one count,
    for an edge that takes one message (`maildesk deliver`). Raises StoreUnavailable."""
    if limit <= 0:
        return None
    pending = pending_count(storage, limit)
    return pending if backlog_full(pending, limit) else None
