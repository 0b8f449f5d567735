"""`maildesk serve`: the SMTP listener, the pipeline worker and the outbox sender in one loop.

Blocking database and SMTP-client work runs in small thread pools so the event loop keeps
answering SMTP clients. SIGTERM/SIGINT: stop accepting, finish stored work, exit. SIGHUP:
reload the config (a broken file is refused and the old config kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from apscheduler.schedulers.background import BackgroundScheduler

from maildesk import jobs, pipeline
from maildesk.app import App
from maildesk.config import MailboxConfig
from maildesk.errors import StoreUnavailable
from maildesk.ingest import imap, inbox
from maildesk.ingest.groupcommit import GroupCommit
from maildesk.ingest.inbox import Incoming
from maildesk.ingest.smtp import IngestHandler, start_smtp_server
from maildesk.notify.sender import send_due
from maildesk.store import health, repo
from maildesk.store.db import transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

CONFIG_WATCH = 1.0  # seconds between checks of the config file for changes
IDLE_POLL = 5.0  # seconds between sweeps when nothing wakes a worker
MAX_SEND_WAIT = 5.0  # also how soon `maildesk outbox retry` from another process is seen
STORE_RETRY = 2.0
SUPERVISE_INTERVAL = 1.0  # seconds between checks for dead workers
HEARTBEAT_INTERVAL = health.HEARTBEAT_INTERVAL
HEARTBEAT_DROP = 5.0  # at most this long at shutdown to remove the heartbeat row
SWITCH_INTERVAL = 0.001  # seconds


@dataclass
class WorkerState:
    """One worker of the daemon as the supervisor sees it."""

    restarts: int = 0
    last_error: str | None = None


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
        self.writer: GroupCommit[Incoming, int] | None = None
        self.workers: dict[str, WorkerState] = {}  # by name: restarts and the last error
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._thread_errors: dict[str, BaseException] = {}
        self._boxes: dict[str, MailboxConfig] = {}
        self._beat_pool = ThreadPoolExecutor(1, thread_name_prefix="md-heartbeat")
        self._beat: asyncio.Future[None] | None = None
        self._host = socket.gethostname()
        self._beat_key = health.heartbeat_key(self._host, os.getpid())
        self._started_at = datetime.now(UTC)

    async def _in(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def run(self, *, install_signals: bool = True) -> None:
        """Serve until stopped; then drain stored work and return."""
        self._loop = asyncio.get_running_loop()
        self._stop, self._work, self._send = asyncio.Event(), asyncio.Event(), asyncio.Event()
        cfg = self.app.config

        # Mail from all SMTP sessions is committed together (group commit): one
        # transaction, one disk sync, for every message waiting at that moment.
        self.writer = writer = GroupCommit[Incoming, int](
            lambda items: inbox.store_raws(self.app, items), name="md-ingest"
        )

        async def store(raw: bytes, mail_from: str | None, rcpts: list[str]) -> int:
            item = Incoming(raw, "smtp", mail_from, tuple(rcpts))
            timeout = self.app.config.smtp.commit_timeout
            try:
                return await asyncio.wait_for(asyncio.wrap_future(writer.submit(item)), timeout)
            except TimeoutError:
                # The client hears 451 while it still listens. The write may yet commit:
                # the sender's retry is then a duplicate, which the pipeline recognises.
                raise StoreUnavailable(f"commit not done within {timeout:g}s") from None

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
        tasks = {
            "pipeline": self._pipeline_worker,
            "sender": self._sender_worker,
            "config-watcher": self._config_watcher,
        }
        for name, work in tasks.items():
            self._tasks[name] = asyncio.create_task(work(), name=name)
            self.workers[name] = WorkerState()
        imap_stop = threading.Event()
        for box in cfg.mailboxes:
            self._start_watcher(box, imap_stop)
        self.workers["ingest-writer"] = WorkerState()
        supervisor = asyncio.create_task(self._supervise(tasks, imap_stop), name="supervisor")
        scheduler = self._start_scheduler()
        self.ready.set()
        await self._stop.wait()
        await supervisor
        # A running SLA job finishes off the event loop: SMTP clients are still served.
        await asyncio.get_running_loop().run_in_executor(None, scheduler.shutdown, True)
        imap_stop.set()
        for watcher in self._threads.values():
            await asyncio.get_running_loop().run_in_executor(None, watcher.join, 30)
        log.info("stopping: no longer accepting mail, finishing stored work")
        server.close()
        await server.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, writer.close)
        self._work.set()
        self._send.set()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self._drop_heartbeat()
        for pool in (self._work_pool, self._send_pool):
            pool.shutdown(wait=True)
        self._beat_pool.shutdown(wait=False)  # a heartbeat stuck on a frozen store is let go
        log.info("maildesk stopped")

    # --- supervision: no worker stays dead --------------------------------------------------

    def _start_watcher(self, box: MailboxConfig, stop: threading.Event) -> None:
        name = f"imap-{box.name}"

        def watch() -> None:
            try:
                imap.watch(self.app, box, stop, self._wake_threadsafe)
            except BaseException as exc:  # the supervisor reports it and restarts
                self._thread_errors[name] = exc

        thread = threading.Thread(target=watch, name=f"md-{name}", daemon=True)
        self._threads[name] = thread
        self._boxes[name] = box
        self.workers.setdefault(name, WorkerState())
        thread.start()

    async def _supervise(
        self, tasks: dict[str, Callable[[], Coroutine[Any, Any, None]]], imap_stop: threading.Event
    ) -> None:
        """Every SUPERVISE_INTERVAL: restart any worker that died (logging why), and write
        this daemon's heartbeat (when a worker changed, else every HEARTBEAT_INTERVAL)."""
        assert self._stop is not None
        last_beat = -HEARTBEAT_INTERVAL
        owed = False  # a change not yet in a heartbeat (the last write was still running)
        while not self._stop.is_set():
            try:
                owed = self._restart_dead(tasks, imap_stop) or owed
                now = time.monotonic()
                due = owed or now - last_beat >= HEARTBEAT_INTERVAL
                if due and (self._beat is None or self._beat.done()):
                    self._beat = asyncio.get_running_loop().run_in_executor(
                        self._beat_pool, self._write_heartbeat, self._snapshot()
                    )
                    last_beat, owed = now, False
            except Exception:  # the supervisor itself must keep going
                log.exception("supervisor error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SUPERVISE_INTERVAL)

    def _restart_dead(
        self, tasks: dict[str, Callable[[], Coroutine[Any, Any, None]]], imap_stop: threading.Event
    ) -> bool:
        assert self._stop is not None
        changed = False
        for name, task in list(self._tasks.items()):
            if self._stop.is_set() or not task.done():
                continue
            error = None if task.cancelled() else task.exception()
            self._died(name, error or "returned")
            self._tasks[name] = asyncio.create_task(tasks[name](), name=name)
            changed = True
        if self.writer is not None and not self.writer.alive and not self._stop.is_set():
            self._died("ingest-writer", self.writer.error or "stopped")
            self.writer.restart()
            changed = True
        for name, thread in list(self._threads.items()):
            if thread.is_alive() or imap_stop.is_set():
                continue
            self._died(name, self._thread_errors.pop(name, "returned"))
            self._start_watcher(self._boxes[name], imap_stop)
            changed = True
        return changed

    def _died(self, name: str, error: BaseException | str) -> None:
        state = self.workers.setdefault(name, WorkerState())
        state.restarts += 1
        if isinstance(error, BaseException):
            state.last_error = f"{type(error).__name__}: {error}"
            log.error(
                "worker %s died (restart %d), restarting it",
                name,
                state.restarts,
                exc_info=(type(error), error, error.__traceback__),
            )
        else:
            state.last_error = error
            log.error(
                "worker %s %s unexpectedly (restart %d), restarting it", name, error, state.restarts
            )

    def _snapshot(self) -> dict[str, Any]:
        return {
            "host": self._host,
            "pid": os.getpid(),
            "port": self.port,
            "started_at": self._started_at.isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
            "workers": {
                name: {"restarts": w.restarts, "last_error": w.last_error}
                for name, w in sorted(self.workers.items())
            },
        }

    def _write_heartbeat(self, state: dict[str, Any]) -> None:
        try:
            with transaction(self.app.sessions) as session:
                health.write_heartbeat(session, self._beat_key, state)
        except Exception as exc:  # a heartbeat is best effort; the store may be down
            log.warning("heartbeat not written: %s", exc)

    async def _drop_heartbeat(self) -> None:
        def drop() -> None:
            with transaction(self.app.sessions) as session:
                health.drop_heartbeat(session, self._beat_key)

        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(self._beat_pool, drop), HEARTBEAT_DROP)
        except Exception as exc:  # the row goes stale instead; status shows its age
            log.warning("heartbeat row not removed: %s", exc)

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
