"""`maildesk serve`: the SMTP listener, the pipeline worker and the outbox sender in one loop.

Blocking database and SMTP-client work runs in small thread pools so the event loop keeps
answering SMTP clients. SIGTERM/SIGINT: stop accepting, finish stored work, exit. SIGHUP:
reload the config (a broken file is refused and the old config kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from apscheduler.schedulers.background import BackgroundScheduler

from maildesk import pipeline
from maildesk.app import App
from maildesk.errors import StoreUnavailable
from maildesk.ingest import imap
from maildesk.ingest.groupcommit import GroupCommit
from maildesk.ingest.smtp import IngestHandler, start_smtp_server
from maildesk.notify.sender import send_due
from maildesk.sla import jobs
from maildesk.store import repo
from maildesk.store.db import transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

CONFIG_WATCH = 1.0  # seconds between checks of the config file for changes
IDLE_POLL = 5.0  # seconds between sweeps when nothing wakes a worker
MAX_SEND_WAIT = 5.0  # also how soon `maildesk outbox retry` from another process is seen
STORE_RETRY = 2.0
SWITCH_INTERVAL = 0.001  # seconds


class Daemon:
    """One running maildesk: build with an App, `await run()`, stop with `request_stop()`."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.port: int | None = None
        self.ready = threading.Event()
        self._work_pool = ThreadPoolExecutor(1, thread_name_prefix="md-pipeline")
        self._send_pool = ThreadPoolExecutor(1, thread_name_prefix="md-sender")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._work: asyncio.Event | None = None
        self._send: asyncio.Event | None = None
        self._sla_stale = True  # recompute every clock's due times on the first run
        self._scheduler: BackgroundScheduler | None = None

    async def _in(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def run(self, *, install_signals: bool = True) -> None:
        """Serve until stopped; then drain stored work and return."""
        self._loop = asyncio.get_running_loop()
        self._stop, self._work, self._send = asyncio.Event(), asyncio.Event(), asyncio.Event()
        cfg = self.app.config

        # Mail from all SMTP sessions is committed together (group commit): one
        # transaction, one disk sync, for every message waiting at that moment.
        writer: GroupCommit[pipeline.Incoming, int] = GroupCommit(
            lambda items: pipeline.store_raws(self.app, items), name="md-ingest"
        )

        async def store(raw: bytes, mail_from: str | None, rcpts: list[str]) -> int:
            item = pipeline.Incoming(raw, "smtp", mail_from, tuple(rcpts))
            return await asyncio.wrap_future(writer.submit(item))

        handler = IngestHandler(
            store,
            accept=lambda: frozenset(self.app.config.smtp.accept),
            on_stored=self._wake,
            max_recipients=cfg.smtp.max_recipients,
        )
        server = await start_smtp_server(
            handler,
            cfg.smtp.host,
            cfg.smtp.port,
            max_message_size=cfg.smtp.max_message_size,
            hostname=socket.getfqdn(),
            timeout=cfg.smtp.timeout,
            max_connections=cfg.smtp.max_connections,
            max_connections_per_client=cfg.smtp.max_connections_per_client,
            per_client_exceptions=cfg.smtp.per_client_exceptions,
            max_junk_commands=cfg.smtp.max_junk_commands,
            min_data_rate=cfg.smtp.min_data_rate,
        )
        self.port = server.sockets[0].getsockname()[1]
        if install_signals:
            self._install_signals()
        log.info(
            "maildesk listening on %s:%s (database %s)",
            cfg.smtp.host,
            self.port,
            self.app.engine.url.render_as_string(hide_password=True),
        )
        workers = [
            asyncio.create_task(self._pipeline_worker(), name="pipeline"),
            asyncio.create_task(self._sender_worker(), name="sender"),
            asyncio.create_task(self._config_watcher(), name="config-watcher"),
        ]
        imap_stop = threading.Event()
        watchers = [
            threading.Thread(
                target=imap.watch,
                args=(lambda: self.app, box, imap_stop, self._wake_threadsafe),
                name=f"md-imap-{box.name}",
                daemon=True,
            )
            for box in cfg.mailboxes
        ]
        for watcher in watchers:
            watcher.start()
        scheduler = self._start_scheduler()
        self.ready.set()
        await self._stop.wait()
        # A running SLA job finishes off the event loop: SMTP clients are still served.
        await asyncio.get_running_loop().run_in_executor(None, scheduler.shutdown, True)
        imap_stop.set()
        for watcher in watchers:
            await asyncio.get_running_loop().run_in_executor(None, watcher.join, 30)
        log.info("stopping: no longer accepting mail, finishing stored work")
        server.close()
        await server.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, writer.close)
        self._work.set()
        self._send.set()
        await asyncio.gather(*workers, return_exceptions=True)
        for pool in (self._work_pool, self._send_pool):
            pool.shutdown(wait=True)
        log.info("maildesk stopped")

    def _start_scheduler(self) -> BackgroundScheduler:
        """APScheduler runs the time-driven jobs: SLA clocks, reminders, auto-close."""
        scheduler = BackgroundScheduler(timezone=UTC)
        interval = self.app.config.sla.check_interval.total_seconds()
        scheduler.add_job(
            self._sla_job,
            "interval",
            seconds=interval,
            id="sla",
            max_instances=1,  # a slow run is never overlapped by the next
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        scheduler.start()
        self._scheduler = scheduler
        return scheduler

    def _sla_job(self) -> None:
        app = self.app
        try:
            if self._sla_stale:
                jobs.refresh_all(app, app.now())
                self._sla_stale = False  # only once done: a failed refresh runs again
            report = jobs.run_due(app, app.now())
        except StoreUnavailable as exc:
            log.error("store unavailable, SLA job skipped: %s", exc)
            return
        except Exception:  # the scheduler must outlive any one failure
            log.exception("SLA job failed; it runs again at the next interval")
            return
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
            self._send_threadsafe()

    def _send_threadsafe(self) -> None:
        if self._loop is not None and self._send is not None:
            self._loop.call_soon_threadsafe(self._send.set)

    def _wake_threadsafe(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self, _raw_id: int = 0) -> None:
        if self._work is not None:
            self._work.set()

    def request_stop(self) -> None:
        """Ask the daemon to stop; safe to call from any thread or a signal handler."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def request_reload(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._reload)

    def _reload(self) -> None:
        if self.app.reload():
            self._sla_stale = True  # targets may have changed: recompute due times
            if self._scheduler is not None:
                seconds = self.app.config.sla.check_interval.total_seconds()
                self._scheduler.reschedule_job("sla", trigger="interval", seconds=seconds)

    async def _config_watcher(self) -> None:
        """Reload when the config file changes (as on SIGHUP); a broken file is tried once."""
        assert self._stop is not None
        seen = _file_stamp(self.app.config.path)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), CONFIG_WATCH)
            stamp = _file_stamp(self.app.config.path)
            if stamp != seen and stamp is not None:
                seen = stamp
                log.info("%s changed on disk, reloading", self.app.config.path)
                self._reload()

    def _install_signals(self) -> None:
        assert self._loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self.request_stop)
        self._loop.add_signal_handler(signal.SIGHUP, self._reload)

    async def _pipeline_worker(self) -> None:
        assert self._stop is not None and self._work is not None and self._send is not None
        while True:
            stopping = self._stop.is_set()
            try:
                outcomes = await self._in(self._work_pool, pipeline.process_pending, self.app)
            except Exception as exc:  # the worker must outlive any one failure
                if isinstance(exc, StoreUnavailable):
                    log.error("store unavailable, pipeline paused: %s", exc)
                else:
                    log.exception("pipeline worker error, retrying in %ss", STORE_RETRY)
                if stopping:
                    return
                await _wait(self._work, STORE_RETRY)
                continue
            if outcomes:
                self._send.set()
            if stopping:
                # The batch in hand is done; whatever else is stored stays pending, safe on
                # disk, for the next start (a long backlog must not hold up a shutdown).
                return
            if outcomes:
                continue  # more may be pending
            await _wait(self._work, IDLE_POLL)

    async def _sender_worker(self) -> None:
        assert self._stop is not None and self._send is not None
        app = self.app
        while True:
            stopping = self._stop.is_set()
            try:
                report = await self._in(
                    self._send_pool,
                    send_due,
                    app.sessions,
                    app.transport,
                    app.config.outbound,
                    app.now,
                )
                next_due = await self._in(self._send_pool, self._next_due)
            except Exception as exc:  # the worker must outlive any one failure
                if isinstance(exc, StoreUnavailable):
                    log.error("store unavailable, sender paused: %s", exc)
                else:
                    log.exception("outbox sender error, retrying in %ss", STORE_RETRY)
                if stopping:
                    return
                await _wait(self._send, STORE_RETRY)
                continue
            if stopping:
                return
            if report.sent or report.retrying or report.failed:
                continue
            await _wait(self._send, next_due)

    def _next_due(self) -> float:
        with transaction(self.app.sessions, readonly=True) as session:
            due = repo.next_outbox_due(session)
        if due is None:
            return MAX_SEND_WAIT
        wait = (due - self.app.now()) / timedelta(seconds=1)
        return max(0.05, min(wait, MAX_SEND_WAIT))


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


def serve(app: App) -> int:
    """Run the daemon in this thread until a signal stops it; return the exit code."""
    # The event loop answering SMTP clients and the group-commit writer wait on the GIL
    # while the pipeline computes; a shorter switch interval lets them in sooner (the
    # default 5 ms would be most of the DATA->250 budget), at a small cost in throughput.
    sys.setswitchinterval(SWITCH_INTERVAL)
    daemon = Daemon(app)
    asyncio.run(daemon.run())
    return 0
