"""The lease that lets one daemon of several read an IMAP mailbox (store/leases.py).

The watcher connects only while it holds the lease, renews it every third of lease_ttl,
and lets go of the connection once it can no longer say it holds it: another daemon took
it, or renewing failed for two thirds of lease_ttl (the store is down, this daemon was
frozen), leaving a third of it before anyone else may take over. A daemon without the
lease checks again every fifth of lease_ttl, so it takes over at most lease_ttl and a fifth
after the holder's last renewal. The lease is given back when the watcher stops.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from maildesk.ingest.inbox import Storage
from maildesk.store import leases
from maildesk.store.db import transaction

log = logging.getLogger(__name__)


class MailboxLease:
    """This daemon's hold on one mailbox."""

    def __init__(self, storage: Storage, mailbox: str, ttl: timedelta) -> None:
        self._storage = storage
        self.mailbox = mailbox
        self.ttl = ttl.total_seconds()
        self.holder = leases.daemon_id()
        self._renewed: float | None = None  # monotonic time of the last renewal that worked
        self._logged: str | None = None

    @property
    def standby_wait(self) -> float:
        """How long a daemon without the lease waits before it asks again."""
        return self.ttl / 5

    def take(self) -> bool:
        """Take (or renew) the lease now; False if another daemon has it or the store is down."""
        now = datetime.now(UTC)  # leases are wall-clock time, whatever clock the desk runs on
        try:
            with transaction(self._storage.sessions) as session:
                taken = leases.take_mailbox(
                    session, self.mailbox, self.holder, now, timedelta(seconds=self.ttl)
                )
                holder = (
                    None
                    if taken
                    else leases.lease_holder(session, leases.MAILBOX + self.mailbox, now)
                )
        except Exception as exc:  # the store is down: not held, as far as we can tell
            self._state(f"lease not renewed ({exc}); store unreachable")
            return self._still_valid()
        if taken:
            self._renewed = time.monotonic()
            self._state(f"lease held by this daemon ({self.holder})")
        else:
            self._renewed = None
            self._state(f"read by another daemon ({holder}); standing by")
        return taken

    def held(self) -> bool:
        """Whether this daemon may go on reading: renews the lease when a third of it passed."""
        if self._renewed is None:
            return False
        if time.monotonic() - self._renewed < self.ttl / 3:
            return True
        return self.take()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait up to `seconds` (until stop), renewing on the way; False once the lease is lost."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            stop.wait(min(left, self.ttl / 3))
            if not self.held():
                return False
        return True

    def release(self) -> None:
        """Give the lease back (at stop), so another daemon takes over at once."""
        if self._renewed is None:
            return
        self._renewed = None
        try:
            with transaction(self._storage.sessions) as session:
                leases.release_mailbox(session, self.mailbox, self.holder)
        except Exception as exc:  # it runs out instead
            log.warning("mailbox %s: lease not released (%s); it runs out", self.mailbox, exc)

    def _still_valid(self) -> bool:
        """A failed renewal: go on only while two thirds of the last lease are left unused."""
        if self._renewed is None:
            return False
        if time.monotonic() - self._renewed < self.ttl * 2 / 3:
            return True
        self._renewed = None
        return False

    def _state(self, text: str) -> None:
        if text != self._logged:
            log.info("mailbox %s: %s", self.mailbox, text)
            self._logged = text
