"""One pipeline worker process of `maildesk serve --workers N`: the pipeline loop of the
in-process worker, run in a process of its own so that N of them use N cores.

The process claims stored mail as any daemon of a fleet does (store/leases.py), under a
holder id of its own: its daemon's HOST:PID and "/wN". It also runs an outbox sender, in a
thread (SenderLoop): the notifications its batches write are sent from here, and the
listener's event loop never sends (several workers' senders share the outbox as the
daemons of a fleet do, each entry claimed by one). The listener that started it talks to
it over two pipes: on stdin a byte per wake-up (`w`: mail was stored; `s`: outbox rows
were written elsewhere, by a scheduled job or a command), and EOF when the listener is
gone; on the saved stdout a first JSON line once it is ready (its signal handlers in
place), then one per batch and one per send (what it processed and sent, for the
listener's metrics) and one each time it goes idle (waits for a wake-up). Its own stdout
is pointed at stderr, so that nothing else is ever written to that pipe.

SIGTERM or SIGINT: the batch in hand is finished, what is stored is processed once more
(one batch, as the pipeline thread does at a stop), what is due in the outbox is sent once
more, then the process exits. SIGHUP: the config is read again (the listener passes its
reloads on).
On Linux the process also asks for SIGTERM when its parent dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType

from maildesk import logctx, pipeline
from maildesk.app import App
from maildesk.daemon.sender_thread import SenderLoop
from maildesk.daemon.supervisor import STORE_RETRY, pass_failed
from maildesk.errors import StoreUnavailable
from maildesk.metrics import Metrics
from maildesk.notify.sender import SendReport
from maildesk.store import leases

log = logging.getLogger(__name__)

WAKE = b"w"  # from the listener, on stdin: mail was stored
SEND = b"s"  # from the listener, on stdin: outbox rows were written
SENDER_STOP = 50.0  # at a stop, the last send may take this long (the listener kills at 60)
IDLE_POLL = 5.0  # seconds between sweeps when nothing wakes the worker
DEFERRED_POLL = 0.5  # a reply deferred (its conversation in another worker's hands)
PR_SET_PDEATHSIG = 1


class RelayedMetrics(Metrics):
    """The pipeline's counters, kept until the next report to the listener, whose
    `/metrics` serves them (this process serves none)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.batch: list[tuple[str, float | None]] = []
        self.rules: list[str] = []
        self.failed = 0
        self.outbox: list[tuple[dict[str, int], int, int]] = []  # the sender's, per send
        self._lock = threading.Lock()  # the sender thread records too

    def processed(self, outcome: str, seconds: float | None = None) -> None:
        with self._lock:
            self.batch.append((outcome, seconds))

    def rules_matched(self, rules: Sequence[str]) -> None:
        with self._lock:
            self.rules.extend(rules)

    def store_failed(self, worker: str) -> None:
        with self._lock:
            self.failed += 1

    def sent(self, kinds: Mapping[str, int], retrying: int, failed: int) -> None:
        if kinds or retrying or failed:
            with self._lock:
                self.outbox.append((dict(kinds), retrying, failed))

    def take(self) -> dict[str, object]:
        with self._lock:
            report = {
                "processed": self.batch,
                "rules": self.rules,
                "store_failed": self.failed,
                "sent": self.outbox,
            }
            self.batch, self.rules, self.failed, self.outbox = [], [], 0, []
        return report


class Worker:
    """The loop of one worker process."""

    def __init__(self, app: App, holder: str, report_fd: int, wake_fd: int = 0) -> None:
        """`report_fd`: where reports go; `wake_fd`: where wake-ups come from (stdin)."""
        self.app = app
        self.holder = holder
        self._wake_fd = wake_fd
        self.metrics = RelayedMetrics()
        app.metrics = self.metrics
        self._report_fd = report_fd
        self._write_lock = threading.Lock()  # the sender thread reports too
        self._sender = SenderLoop(app, self._sent)
        self._stop = False
        self._reload = False
        self._signal_r, signal_w = os.pipe()
        os.set_blocking(self._signal_r, False)
        os.set_blocking(signal_w, False)
        signal.set_wakeup_fd(signal_w)

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, _sig: int, _frame: FrameType | None) -> None:
        self._stop = True

    def _on_reload(self, _sig: int, _frame: FrameType | None) -> None:
        self._reload = True

    def run(self) -> int:
        log.info("pipeline worker %s ready (pid %d)", self.holder, os.getpid())
        self._write({"ready": True})  # signals are handled from now on
        self._sender.start()
        while not self._stop:
            if self._reload:
                self._reload = False
                if self.app.reload():
                    logctx.use_format(self.app.config.log.format)
            wait = self._pass()
            if wait:
                self._wait(wait)
        # As the pipeline thread does: once more after the stop, for the mail stored last
        # (the listener stops taking mail before it stops its workers); then the outbox.
        self._pass()
        self._sender.stop(SENDER_STOP)
        log.info("pipeline worker %s stopped", self.holder)
        return 0

    def _pass(self) -> float:
        """One batch; how long to wait before the next (0: at once, more may be pending)."""
        try:
            # The sender hears of each commit: a batch's first notifications go out while
            # the rest of it is processed.
            outcomes = pipeline.process_pending(self.app, committed=self._sender.wake)
        except Exception as exc:  # the worker must outlive any one failure
            pass_failed(self.metrics, "pipeline", exc, STORE_RETRY)
            if isinstance(exc, StoreUnavailable):
                self._report(0)  # the listener counts the outage now
            return STORE_RETRY
        if outcomes:
            self._sender.wake()  # their notifications are in the outbox
            self._report(len(outcomes))
        deferred = any(o.status == "deferred" for o in outcomes)
        if outcomes and not all(o.status == "deferred" for o in outcomes):
            return 0
        return DEFERRED_POLL if deferred else IDLE_POLL

    def _report(self, count: int) -> None:
        self._write({"count": count, **self.metrics.take()})

    def _sent(self, report: SendReport) -> None:
        """The sender sent (or retried, or gave up on) some: the listener counts them."""
        self.metrics.sent(report.kinds, report.retrying, report.failed)
        self._report(0)

    def _write(self, report: dict[str, object]) -> None:
        line = memoryview(json.dumps(report).encode() + b"\n")
        try:
            with self._write_lock:
                while line:  # a signal may cut a long write short
                    line = line[os.write(self._report_fd, line) :]
        except BrokenPipeError:
            self._stop = True  # the listener is gone

    def _wait(self, timeout: float) -> None:
        """Until the listener wakes this worker for mail, a signal comes, or timeout (a
        wake-up for the outbox goes to the sender, and the wait goes on)."""
        if self._stop:
            return
        self._write({"idle": True})  # the listener wakes an idle worker for new mail
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                ready, _, _ = select.select([self._wake_fd, self._signal_r], [], [], left)
            except InterruptedError:
                return
            if self._signal_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._signal_r, 4096)
                return
            if self._wake_fd not in ready:
                return
            data = os.read(self._wake_fd, 4096)
            if not data:
                log.warning("pipeline worker %s: the listener is gone, stopping", self.holder)
                self._stop = True
                return
            if SEND in data:
                self._sender.wake()
            if WAKE in data:
                return


def die_with_parent(parent: int) -> None:
    """SIGTERM when the listener dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # stdin's EOF still tells
            pass
    if os.getppid() != parent:
        raise SystemExit(0)


def run_worker(app: App, holder: str) -> int:
    """Run this process as the pipeline worker `holder` (HOST:PID/wN) until told to stop."""
    parent = int(holder.rsplit(":", 1)[1].split("/", 1)[0])
    die_with_parent(parent)
    report_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print goes to the log, never into the report pipe
    leases.use_holder(holder)
    logctx.use_daemon(holder)
    worker = Worker(app, holder, report_fd)
    worker.install_signals()
    return worker.run()
