"""The daemon's loops: the pipeline worker, the outbox sender, the config watcher, and the
SLA job that APScheduler runs. Each outlives any one failure (the supervisor restarts one
that dies anyway); blocking work runs in the thread pool it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from apscheduler.schedulers.background import BackgroundScheduler

from maildesk import jobs, pipeline
from maildesk.app import App
from maildesk.daemon.sender_thread import MAX_SEND_WAIT
from maildesk.daemon.supervisor import STORE_RETRY, pass_failed
from maildesk.errors import StoreUnavailable
from maildesk.notify.sender import RENEWED_BATCH, next_due_wait, send_due

log = logging.getLogger(__name__)
T = TypeVar("T")

CONFIG_WATCH = 1.0  # seconds between checks of the config file for changes
IDLE_POLL = 5.0  # seconds between sweeps when nothing wakes a worker


@dataclass
class Wakeups:
    """What the loops wait for: `stop`; `work`, mail stored; `send`, outbox rows written."""

    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    work: asyncio.Event = field(default_factory=asyncio.Event)
    send: asyncio.Event = field(default_factory=asyncio.Event)
    # Also told when mail is stored, and when outbox rows are written: the pipeline worker
    # processes (`serve --workers N`), whose senders send them.
    on_work: list[Callable[[], None]] = field(default_factory=list)
    on_send: list[Callable[[], None]] = field(default_factory=list)

    def wake(self, _raw_id: int = 0) -> None:
        self.work.set()
        for wake in self.on_work:
            wake()

    def wake_threadsafe(self) -> None:
        self.loop.call_soon_threadsafe(self.wake)

    def outbox(self) -> None:
        """Outbox rows were written: the sender sends them now."""
        self.send.set()
        for wake in self.on_send:
            wake()

    def send_threadsafe(self) -> None:
        self.loop.call_soon_threadsafe(self.outbox)


async def pipeline_worker(app: App, events: Wakeups, pool: ThreadPoolExecutor) -> None:
    """Process stored mail whenever some arrives (or every IDLE_POLL), until stop."""
    while True:
        stopping = events.stop.is_set()
        try:
            # The sender hears of each commit, not only of the whole batch.
            run = partial(pipeline.process_pending, committed=events.send_threadsafe)
            outcomes = await _in(pool, run, app)
        except Exception as exc:  # the worker must outlive any one failure
            pass_failed(app.metrics, "pipeline", exc, STORE_RETRY)
            if stopping:
                return
            await _wait(events.work, STORE_RETRY)
            continue
        if outcomes:
            events.send.set()
        if stopping:
            # The batch in hand is done; whatever else is stored stays pending, safe on
            # disk, for the next start (a long backlog must not hold up a shutdown).
            return
        if outcomes:
            continue  # more may be pending
        await _wait(events.work, IDLE_POLL)


async def sender_worker(app: App, events: Wakeups, pool: ThreadPoolExecutor) -> None:
    """Send what the outbox holds when it is due, until stop."""
    while True:
        stopping = events.stop.is_set()
        try:
            send = partial(send_due, limit=RENEWED_BATCH, renew=app.config.fleet.lease_ttl)
            report = await _in(
                pool, send, app.sessions, app.transport, app.config.outbound, app.now
            )
            next_due = await _in(pool, next_due_wait, app.sessions, app.now, MAX_SEND_WAIT)
        except Exception as exc:  # the worker must outlive any one failure
            pass_failed(app.metrics, "sender", exc, STORE_RETRY)
            if stopping:
                return
            await _wait(events.send, STORE_RETRY)
            continue
        app.metrics.sent(report.kinds, report.retrying, report.failed)
        if stopping:
            return
        if report.sent or report.retrying or report.failed:
            continue
        await _wait(events.send, next_due)


async def config_watcher(app: App, stop: asyncio.Event, reload: Callable[[], None]) -> None:
    """Reload when the config file or the CI inventory it names changes (as on SIGHUP);
    a broken file is tried once."""
    seen = _config_stamp(app)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CONFIG_WATCH)
        stamp = _config_stamp(app)
        if stamp != seen and stamp[0] is not None:
            seen = stamp
            log.info("%s (or its inventory) changed on disk, reloading", app.config.path)
            reload()


def _config_stamp(app: App) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """The config file's stamp and the inventory's (`[cmdb] path`; None: absent)."""
    inventory = app.config.cmdb.path
    return _file_stamp(app.config.path), _file_stamp(inventory) if inventory else None


class SlaSchedule:
    """APScheduler runs the time-driven jobs: SLA clocks, reminders, auto-close."""

    def __init__(self, app: App, on_notices: Callable[[], None]) -> None:
        self.app = app
        self._on_notices = on_notices  # the job wrote outbox rows
        self._stale = True  # recompute every clock's due times on the first run
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        scheduler = BackgroundScheduler(timezone=UTC)
        interval = self.app.config.sla.check_interval.total_seconds()
        scheduler.add_job(
            self.run_job,
            "interval",
            seconds=interval,
            id="sla",
            max_instances=1,  # a slow run is never overlapped by the next
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        jobs.schedule_learning(scheduler, self.app)
        scheduler.start()
        self._scheduler = scheduler

    def config_changed(self) -> None:
        """Targets and the interval may have changed: recompute due times, reschedule."""
        self._stale = True
        if self._scheduler is not None:
            seconds = self.app.config.sla.check_interval.total_seconds()
            self._scheduler.reschedule_job("sla", trigger="interval", seconds=seconds)

    def shutdown(self) -> None:
        """Stop the scheduler, letting a running job finish (blocks: call it off the loop)."""
        assert self._scheduler is not None
        self._scheduler.shutdown(True)

    def run_job(self) -> None:
        app = self.app
        try:
            if self._stale:
                jobs.refresh_all(app, app.now())
                self._stale = False  # only once done: a failed refresh runs again
            if not jobs.take_firing(app, "sla", app.config.sla.check_interval):
                return  # another daemon on the database runs this firing
            report = jobs.run_due(app, app.now())
            jobs.release_stale_fragments(app, app.now())  # the pipeline worker takes them
            jobs.detect_problems(app, app.now())  # [problems] detect
            jobs.send_surveys(app, app.now())  # [survey]
            jobs.change_notices(app, app.now())  # change windows: starting, passed
            jobs.check_approvals(app, app.now())  # [[catalog]] approval reminders, expiry
        except StoreUnavailable as exc:
            app.metrics.store_failed("sla")
            log.error("store unavailable, SLA job skipped: %s", exc)
            return
        except Exception:  # the scheduler must outlive any one failure
            log.exception("SLA job failed; it runs again at the next interval")
            return
        app.metrics.sla_job(report.warnings, report.breaches)
        if report:
            log.info(
                "SLA job: %d tickets, %d warnings, %d breaches, %d reminders, "
                "%d resolved, %d closed",
                report.tickets,
                report.warnings,
                report.breaches,
                report.reminders,
                report.resolved,
                report.closed,
            )
            self._on_notices()


async def _in(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None  # mid-save by an editor: look again next time
    return st.st_mtime_ns, st.st_size


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    event.clear()
