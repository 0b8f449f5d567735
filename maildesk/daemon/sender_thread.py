"""The outbox sender of a pipeline worker process (daemon/pipeline_proc.py), in a thread
of its own: what the worker's batches write to the outbox is sent from the same process,
so the listener's event loop never does this work, and on SQLite the sender and the
pipeline take the database's one write lock in turn through the process's write gate
(store/db.py) instead of waiting for each other across processes.

The same loop as the daemon's own sender task (daemon/workers.py), blocking: send what is
due, again at once while there was something, else wait until the next entry is due, a
wake-up comes, or MAX_SEND_WAIT.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from maildesk.app import App
from maildesk.daemon.supervisor import STORE_RETRY, pass_failed
from maildesk.notify.sender import RENEWED_BATCH, SendReport, next_due_wait, send_due

log = logging.getLogger(__name__)

MAX_SEND_WAIT = 5.0  # also how soon `maildesk outbox retry` from another process is seen


class SenderLoop:
    """Sends the outbox in a thread until stopped; `on_sent` hears each send that did
    something (for the listener's metrics)."""

    def __init__(self, app: App, on_sent: Callable[[SendReport], None]) -> None:
        self.app = app
        self._on_sent = on_sent
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="md-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Outbox rows were written: send them now."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Send what is due once more, then end (waiting at most timeout)."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        app = self.app
        while True:
            stopping = self._stopping
            self._wake.clear()  # a wake-up from now on is seen by the wait below
            try:
                report = send_due(
                    app.sessions,
                    app.transport,
                    app.config.outbound,
                    app.now,
                    limit=RENEWED_BATCH,
                    renew=app.config.fleet.lease_ttl,
                )
                wait = next_due_wait(app.sessions, app.now, MAX_SEND_WAIT)
            except Exception as exc:  # the sender must outlive any one failure
                pass_failed(app.metrics, "sender", exc, STORE_RETRY)
                if stopping:
                    return
                self._wake.wait(STORE_RETRY)
                continue
            busy = bool(report.sent or report.retrying or report.failed)
            if busy:
                self._on_sent(report)
            if stopping:
                return
            if not busy:
                self._wake.wait(wait)
