"""The daemon's wiring: the SMTP listener and its group-commit writer, the LMTP listener
(`[lmtp] listen`) beside it, the HTTP listener (`[http] listen`), the workers, the IMAP
watchers, the supervisor and the SLA schedule, started in order and stopped in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from maildesk import logctx
from maildesk.app import App
from maildesk.daemon.procs import WorkerProcesses
from maildesk.daemon.sdnotify import Notifier
from maildesk.daemon.supervisor import Heartbeat, Supervisor, WorkerState
from maildesk.daemon.workers import (
    SlaSchedule,
    Wakeups,
    config_watcher,
    pipeline_worker,
    sender_worker,
)
from maildesk.errors import MaildeskError, StoreUnavailable
from maildesk.http.server import HttpListener
from maildesk.ingest import imap, inbox
from maildesk.ingest.backlog import Backlog
from maildesk.ingest.groupcommit import GroupCommit
from maildesk.ingest.inbox import Incoming
from maildesk.ingest.lmtp import LmtpHandler, start_lmtp_server, stop_lmtp_server
from maildesk.ingest.smtp import IngestHandler, config_limits, start_smtp_server
from maildesk.store import leases
from maildesk.store.db import transaction

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.001  # seconds
WATCHER_JOIN = 30.0  # seconds to wait for each IMAP watcher at shutdown


class Daemon:
    """One running maildesk: build with an App, `await run()`, stop with `request_stop()`."""

    def __init__(self, app: App, *, workers: int = 0) -> None:
        self.app = app
        self.worker_count = workers  # pipeline worker processes; 0: the pipeline thread
        self.procs: WorkerProcesses | None = None
        self.port: int | None = None
        self.http: HttpListener | None = None  # [http] listen, when set
        self.ready = threading.Event()
        self.writer: GroupCommit[Incoming, int] | None = None
        self.lmtp: asyncio.Server | None = None  # [lmtp] listen, when set
        self.backlog = Backlog(
            lambda cap: inbox.pending_count(app, cap),
            lambda: self.app.config.smtp.max_backlog,
            metrics=app.metrics,
        )
        self._work_pool = ThreadPoolExecutor(1, thread_name_prefix="md-pipeline")
        self._send_pool = ThreadPoolExecutor(1, thread_name_prefix="md-sender")
        self._events: Wakeups | None = None
        self._schedule = SlaSchedule(app, self._send_threadsafe)
        self.notify = Notifier()  # systemd's $NOTIFY_SOCKET, if any
        self._supervisor = Supervisor(
            Heartbeat(app.sessions, lambda: self.port), tick=self.notify.watchdog
        )
        self.workers: dict[str, WorkerState] = self._supervisor.workers

    async def run(self, *, install_signals: bool = True) -> None:
        """Serve until stopped; then drain stored work and return."""
        self._events = events = Wakeups(asyncio.get_running_loop())
        self._release_dead_predecessors()
        if self.app.config.http.enabled:  # first: it starts no thread, so a failure stops clean
            self.http = HttpListener(self.app, events.wake_threadsafe)
            await self.http.start()
        try:
            server = await self._listen(events)
        except BaseException:
            if self.http is not None:
                await self.http.stop()
            raise
        if install_signals:
            self._install_signals()
        log.info(
            "maildesk listening on %s:%s (database %s)",
            self.app.config.smtp.host,
            self.port,
            self.app.engine.url.render_as_string(hide_password=True),
        )
        self._start_workers(events)
        supervisor = asyncio.create_task(self._supervisor.run(events.stop), name="supervisor")
        self._schedule.start()
        self.ready.set()
        self.notify.ready(self._status())
        await events.stop.wait()
        await supervisor
        await self._shutdown(events, server)

    def _release_dead_predecessors(self) -> None:
        """Leases and mail claims of a daemon on this host that died (killed, then this
        one started) are taken back now, not after lease_ttl."""
        try:
            with transaction(self.app.sessions) as session:
                dead = leases.release_dead_here(session, socket.gethostname(), _alive)
        except StoreUnavailable as exc:
            log.warning("could not release a dead daemon's leases: %s", exc)
            return
        if dead:
            log.info("released the leases and claims of %s (no longer running)", ", ".join(dead))

    async def _listen(self, events: Wakeups) -> asyncio.Server:
        """The SMTP listener. Mail from all its sessions is committed together (group
        commit): one transaction, one disk sync, for every message waiting at that moment."""
        self.writer = GroupCommit[Incoming, int](
            lambda items: inbox.store_raws(self.app, items), name="md-ingest"
        )
        smtp = self.app.config.smtp
        await self.backlog.refresh()
        handler = IngestHandler(
            self._store,
            accept=lambda: frozenset(self.app.config.smtp.accept),
            on_stored=events.wake,
            max_recipients=smtp.max_recipients,
            metrics=self.app.metrics,
            backlog=self.backlog,
        )
        server = await start_smtp_server(
            handler, smtp.host, smtp.port, hostname=socket.getfqdn(), **config_limits(smtp)
        )
        self.port = server.sockets[0].getsockname()[1]
        try:
            await self._listen_lmtp(events)
        except BaseException:
            server.close()
            self.writer.close()
            raise
        return server

    async def _listen_lmtp(self, events: Wakeups) -> None:
        """The LMTP listener, if `[lmtp] listen` is set: the SMTP listener's accept list,
        limits, back-pressure and group commit, with LMTP's dialogue."""
        lmtp, smtp = self.app.config.lmtp, self.app.config.smtp
        if not lmtp.enabled:
            return
        handler = LmtpHandler(
            self._store_lmtp,
            accept=lambda: frozenset(self.app.config.smtp.accept),
            on_stored=events.wake,
            max_recipients=smtp.max_recipients,
            metrics=self.app.metrics,
            backlog=self.backlog,
            source="lmtp",
        )
        try:
            self.lmtp = await start_lmtp_server(handler, lmtp, smtp, hostname=socket.getfqdn())
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise MaildeskError(
                f"serve: cannot listen on {lmtp.where} ([lmtp] listen): {reason}"
            ) from None
        log.info("maildesk LMTP listening on %s", self.lmtp_address)

    @property
    def lmtp_address(self) -> str | None:
        """Where the LMTP listener listens: host:port (the port it got) or the socket path."""
        if self.lmtp is None:
            return None
        name = self.lmtp.sockets[0].getsockname()
        return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)

    async def _store_lmtp(self, raw: bytes, mail_from: str | None, rcpts: list[str]) -> int:
        return await self._store(raw, mail_from, rcpts, origin="lmtp")

    async def _store(
        self, raw: bytes, mail_from: str | None, rcpts: list[str], origin: str = "smtp"
    ) -> int:
        """Hand one SMTP (LMTP) message to the group commit; raise StoreUnavailable if the
        commit is not done within `[smtp] commit_timeout`."""
        assert self.writer is not None
        item = Incoming(raw, origin, mail_from, tuple(rcpts))
        timeout = self.app.config.smtp.commit_timeout
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self.writer.submit(item)), timeout)
        except TimeoutError:
            # The client hears 451 while it still listens. The write may yet commit:
            # the sender's retry is then a duplicate, which the pipeline recognises.
            raise StoreUnavailable(f"commit not done within {timeout:g}s") from None

    def _start_workers(self, events: Wakeups) -> None:
        """The loops, one IMAP watcher per mailbox and the writer, under supervision."""
        app, supervisor = self.app, self._supervisor
        if self.worker_count:
            # Each worker process sends the outbox too (daemon/sender_thread.py).
            self.procs = WorkerProcesses(
                app, self.worker_count, supervisor.workers, stop=events.stop
            )
            self.procs.start()
            events.on_work.append(self.procs.wake)
            events.on_send.append(self.procs.wake_senders)
        else:
            supervisor.start_task("pipeline", lambda: pipeline_worker(app, events, self._work_pool))
            supervisor.start_task("sender", lambda: sender_worker(app, events, self._send_pool))
        supervisor.start_task(
            "config-watcher", lambda: config_watcher(app, events.stop, self._reload)
        )
        for box in app.config.mailboxes:
            watch = partial(
                imap.watch,
                app,
                box,
                supervisor.threads_stop,
                events.wake_threadsafe,
                app.metrics,
                lease_ttl=app.config.lease_ttl(box),
            )
            supervisor.start_thread(f"imap-{box.name}", watch)
        assert self.writer is not None
        supervisor.watch("ingest-writer", self.writer)

    async def _shutdown(self, events: Wakeups, server: asyncio.Server) -> None:
        """Stop taking mail, finish what was stored (the batch in hand), then let go."""
        self.notify.stopping("stopping: no longer accepting mail, finishing stored work")
        loop = asyncio.get_running_loop()
        # A running SLA job finishes off the event loop: SMTP clients are still served.
        await loop.run_in_executor(None, self._schedule.shutdown)
        await self._supervisor.stop_threads(WATCHER_JOIN)
        log.info("stopping: no longer accepting mail, finishing stored work")
        server.close()
        if self.lmtp is not None:
            await stop_lmtp_server(self.lmtp, self.app.config.lmtp.path)
        if self.http is not None:
            await self.http.stop()
        await server.wait_closed()
        assert self.writer is not None
        await loop.run_in_executor(None, self.writer.close)
        if self.procs is not None:  # each finishes its batch and exits
            await self.procs.stop()
        events.work.set()
        events.send.set()
        await self._supervisor.finish_tasks()
        await self._supervisor.heartbeat.drop()
        for pool in (self._work_pool, self._send_pool):
            pool.shutdown(wait=True)
        self._supervisor.heartbeat.close()
        log.info("maildesk stopped")

    # --- signals and reloads -----------------------------------------------------------------

    def _send_threadsafe(self) -> None:
        if self._events is not None:
            self._events.send_threadsafe()

    def request_stop(self) -> None:
        """Ask the daemon to stop; safe to call from any thread or a signal handler."""
        if self._events is not None:
            self._events.loop.call_soon_threadsafe(self._events.stop.set)

    def request_reload(self) -> None:
        if self._events is not None:
            self._events.loop.call_soon_threadsafe(self._reload)

    def _reload(self) -> None:
        self.notify.reloading()
        try:
            if self.app.reload():
                logctx.use_format(self.app.config.log.format)
                self._schedule.config_changed()
                if self.procs is not None:
                    self.procs.reload()
        finally:
            self.notify.ready(self._status())

    def _status(self) -> str:
        """What `systemctl status` shows: where the daemon takes mail."""
        where = [f"SMTP {self.app.config.smtp.host}:{self.port}"]
        if self.http is not None:
            where.append(f"HTTP {self.app.config.http.host}:{self.http.port}")
        boxes = len(self.app.config.mailboxes)
        procs = f"; {self.worker_count} pipeline worker(s)" if self.worker_count else ""
        return f"taking mail on {', '.join(where)}; {boxes} IMAP mailbox(es){procs}"

    def _install_signals(self) -> None:
        assert self._events is not None
        loop = self._events.loop
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload)


def _alive(pid: int) -> bool:
    """Whether a process of this host is running (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serve(app: App, *, workers: int = 0) -> int:
    """Run the daemon in this thread until a signal stops it; return the exit code.
    `workers`: that many pipeline worker processes instead of the pipeline thread."""
    # The event loop answering SMTP clients and the group-commit writer wait on the GIL
    # while the pipeline computes; a shorter switch interval lets them in sooner (the
    # default 5 ms would be most of the DATA->250 budget), at a small cost in throughput.
    sys.setswitchinterval(SWITCH_INTERVAL)
    daemon = Daemon(app, workers=workers)
    asyncio.run(daemon.run())
    return 0
