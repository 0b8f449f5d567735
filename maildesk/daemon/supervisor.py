"""No worker of the daemon stays dead: restart whatever died (logging why), and keep the
daemon's heartbeat row, which `maildesk status` reads, up to date.

The supervisor knows its workers only by name and by how to start them: asyncio tasks,
threads, and anything with `alive`, `error` and `restart()` (the group-commit writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from maildesk.errors import StoreUnavailable
from maildesk.metrics import Metrics
from maildesk.store import health
from maildesk.store.db import transaction

log = logging.getLogger(__name__)

SUPERVISE_INTERVAL = 1.0  # seconds between checks for dead workers
HEARTBEAT_INTERVAL = health.HEARTBEAT_INTERVAL
HEARTBEAT_DROP = 5.0  # at most this long at shutdown to remove the heartbeat row

TaskFactory = Callable[[], Coroutine[Any, Any, None]]
LOOPS = {"pipeline": "pipeline worker", "sender": "outbox sender"}
STORE_RETRY = 2.0  # seconds before a loop whose pass failed tries again


def pass_failed(metrics: Metrics, loop: str, exc: Exception, retry: float) -> None:
    """A pass of the pipeline or sender loop failed (call from its except block): a store
    that is unavailable is counted and logged as that; anything else with its traceback."""
    if isinstance(exc, StoreUnavailable):
        metrics.store_failed(loop)
        log.error("store unavailable, %s paused: %s", loop, exc)
    else:
        log.exception("%s error, retrying in %ss", LOOPS[loop], retry)


@dataclass
class WorkerState:
    """One worker of the daemon as the supervisor sees it."""

    restarts: int = 0
    last_error: str | None = None
    # A pipeline worker process (`serve --workers N`): its claimer id, pid, messages done.
    holder: str | None = None
    pid: int | None = None
    processed: int = 0

    def snapshot(self) -> dict[str, Any]:
        """As the heartbeat shows it."""
        shown: dict[str, Any] = {"restarts": self.restarts, "last_error": self.last_error}
        if self.holder is not None:
            shown.update(holder=self.holder, pid=self.pid, processed=self.processed)
        return shown


class Restartable(Protocol):
    """A worker that runs a thread of its own and can start another when it died."""

    @property
    def alive(self) -> bool: ...

    @property
    def error(self) -> BaseException | None: ...

    def restart(self) -> None: ...


class Heartbeat:
    """This daemon's row in the store: who it is, since when, and how its workers do.

    Written off the event loop in a thread of its own: a heartbeat stuck on a frozen store
    holds up nothing else.
    """

    def __init__(self, sessions: sessionmaker[Session], port: Callable[[], int | None]) -> None:
        self._sessions = sessions
        self._port = port
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="md-heartbeat")
        self._pending: asyncio.Future[None] | None = None
        self._host = socket.gethostname()
        self._key = health.heartbeat_key(self._host, os.getpid())
        self._started_at = datetime.now(UTC)

    @property
    def idle(self) -> bool:
        """No write under way (the last one is done, however it ended)."""
        return self._pending is None or self._pending.done()

    def send(self, workers: dict[str, WorkerState]) -> None:
        """Start writing the heartbeat with the workers as they are now."""
        self._pending = asyncio.get_running_loop().run_in_executor(
            self._pool, self._write, self._snapshot(workers)
        )

    def _snapshot(self, workers: dict[str, WorkerState]) -> dict[str, Any]:
        return {
            "host": self._host,
            "pid": os.getpid(),
            "port": self._port(),
            "started_at": self._started_at.isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
            "workers": {name: w.snapshot() for name, w in sorted(workers.items())},
        }

    def _write(self, state: dict[str, Any]) -> None:
        try:
            with transaction(self._sessions) as session:
                health.write_heartbeat(session, self._key, state)
        except Exception as exc:  # a heartbeat is best effort; the store may be down
            log.warning("heartbeat not written: %s", exc)

    async def drop(self) -> None:
        """Remove the row at shutdown, waiting at most HEARTBEAT_DROP for the store."""

        def drop() -> None:
            with transaction(self._sessions) as session:
                health.drop_heartbeat(session, self._key)

        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(self._pool, drop), HEARTBEAT_DROP)
        except Exception as exc:  # the row goes stale instead; status shows its age
            log.warning("heartbeat row not removed: %s", exc)

    def close(self) -> None:
        self._pool.shutdown(wait=False)  # a heartbeat stuck on a frozen store is let go


class Supervisor:
    """The daemon's workers by name: started here, restarted here when they die."""

    def __init__(self, heartbeat: Heartbeat, *, tick: Callable[[], None] | None = None) -> None:
        self.heartbeat = heartbeat
        self._tick = tick  # called every SUPERVISE_INTERVAL (the systemd watchdog)
        self.workers: dict[str, WorkerState] = {}  # by name: restarts and the last error
        self.threads_stop = threading.Event()  # set at shutdown: threads end, stay ended
        self._factories: dict[str, TaskFactory] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._targets: dict[str, Callable[[], None]] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._thread_errors: dict[str, BaseException] = {}
        self._writers: dict[str, Restartable] = {}

    def start_task(self, name: str, factory: TaskFactory) -> None:
        """Run factory() as an asyncio task, and again whenever it ends."""
        self._factories[name] = factory
        self._tasks[name] = asyncio.create_task(factory(), name=name)
        self.workers[name] = WorkerState()

    def start_thread(self, name: str, target: Callable[[], None]) -> None:
        """Run target() in a thread, and again whenever it ends (until threads_stop)."""
        self._targets[name] = target

        def run() -> None:
            try:
                target()
            except BaseException as exc:  # the supervisor reports it and restarts
                self._thread_errors[name] = exc

        thread = threading.Thread(target=run, name=f"md-{name}", daemon=True)
        self._threads[name] = thread
        self.workers.setdefault(name, WorkerState())
        thread.start()

    def watch(self, name: str, worker: Restartable) -> None:
        """Restart worker whenever it is found dead."""
        self._writers[name] = worker
        self.workers[name] = WorkerState()

    async def run(self, stop: asyncio.Event) -> None:
        """Every SUPERVISE_INTERVAL until stop: restart any worker that died, and write
        this daemon's heartbeat (when a worker changed, else every HEARTBEAT_INTERVAL)."""
        last_beat = -HEARTBEAT_INTERVAL
        owed = False  # a change not yet in a heartbeat (the last write was still running)
        while not stop.is_set():
            try:
                if self._tick is not None:
                    self._tick()
                owed = self._restart_dead(stop) or owed
                now = time.monotonic()
                due = owed or now - last_beat >= HEARTBEAT_INTERVAL
                if due and self.heartbeat.idle:
                    self.heartbeat.send(self.workers)
                    last_beat, owed = now, False
            except Exception:  # the supervisor itself must keep going
                log.exception("supervisor error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SUPERVISE_INTERVAL)

    async def stop_threads(self, timeout: float) -> None:
        """Tell the threads to end and wait for each (at most timeout seconds)."""
        self.threads_stop.set()
        loop = asyncio.get_running_loop()
        for thread in self._threads.values():
            await loop.run_in_executor(None, thread.join, timeout)

    async def finish_tasks(self) -> None:
        """Wait for every task to end (they end once told to stop)."""
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _restart_dead(self, stop: asyncio.Event) -> bool:
        changed = False
        for name, task in list(self._tasks.items()):
            if stop.is_set() or not task.done():
                continue
            error = None if task.cancelled() else task.exception()
            self._died(name, error or "returned")
            self._tasks[name] = asyncio.create_task(self._factories[name](), name=name)
            changed = True
        for name, worker in self._writers.items():
            if not worker.alive and not stop.is_set():
                self._died(name, worker.error or "stopped")
                worker.restart()
                changed = True
        for name, thread in list(self._threads.items()):
            if thread.is_alive() or self.threads_stop.is_set():
                continue
            self._died(name, self._thread_errors.pop(name, "returned"))
            self.start_thread(name, self._targets[name])
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
