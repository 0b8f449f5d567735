"""The pipeline worker processes of `maildesk serve --workers N`, seen from the listener:
started, woken when mail is stored (and their outbox senders when the listener wrote
outbox rows), told to reload, restarted with backoff when one dies (its claims given back
at once, so the others take its mail), and stopped at shutdown.

Each process is `maildesk serve --as-worker HOLDER` (daemon/pipeline_proc.py). It is
started from the event loop's thread, the daemon's main thread, so its death signal
(PR_SET_PDEATHSIG) fires only when the daemon itself ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from maildesk.app import App
from maildesk.daemon.pipeline_proc import SEND, WAKE
from maildesk.daemon.supervisor import WorkerState
from maildesk.store import leases
from maildesk.store.db import transaction

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.5  # seconds before the first restart of a worker that died
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0  # a worker that ran this long before dying restarts at BACKOFF_FIRST
STOP_TIMEOUT = 60.0  # at shutdown, a worker finishing its batch is killed after this long


@dataclass
class _Proc:
    index: int
    holder: str
    popen: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0  # deaths in a row, each after less than STABLE_AFTER
    exited: asyncio.Future[int] | None = None
    restart: asyncio.TimerHandle | None = None
    ready: bool = False  # its signal handlers are in place (it said so)
    idle: bool = False  # waiting for a wake-up (it said so, and none was sent since)
    reload_owed: bool = False  # a reload came before it was ready: SIGHUP once it is
    stop_owed: bool = False  # the stop came before it was ready: SIGTERM once it is
    woken: int = 0  # when it was last woken (a count): the idle one woken longest ago next

    @property
    def name(self) -> str:
        return f"w{self.index}"


class WorkerProcesses:
    """N pipeline worker processes beside the listener."""

    def __init__(
        self,
        app: App,
        count: int,
        states: dict[str, WorkerState],
        *,
        stop: asyncio.Event,
    ) -> None:
        self.app = app
        self._states = states
        self._stop = stop
        daemon = leases.daemon_id()
        self._procs = [_Proc(i, leases.worker_holder(daemon, i)) for i in range(1, count + 1)]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._owed = False  # a wake-up found no worker idle
        self._woken = 0

    @property
    def holders(self) -> list[str]:
        return [p.holder for p in self._procs]

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self._procs if p.popen is not None]

    def start(self) -> None:
        """Start every worker (call on the event loop's thread)."""
        self._loop = asyncio.get_running_loop()
        for proc in self._procs:
            self._states[proc.name] = WorkerState(holder=proc.holder)
            self._spawn(proc)

    def wake(self, _raw_id: int = 0) -> None:
        """Mail was stored: an idle worker looks for it now (the next idle one in turn). A
        busy worker takes more once its batch is done, so with none idle the wake-up is owed
        to the first that goes idle: mail stored while it ran its last, empty, pass is never
        left for the 5 s sweep."""
        idle = [p for p in self._procs if p.idle]
        if not idle:
            self._owed = True
            return
        proc = min(idle, key=lambda p: p.woken)
        self._woken += 1
        proc.idle, proc.woken = False, self._woken
        self._send(proc, WAKE)

    def wake_senders(self) -> None:
        """Outbox rows were written here (a scheduled job): the workers' senders send them."""
        for proc in self._procs:
            self._send(proc, SEND)

    def reload(self) -> None:
        """The config changed (SIGHUP, or the file): every worker reads it again."""
        for proc in self._procs:
            if proc.ready:
                self._hangup(proc)
            else:  # still starting: SIGHUP now would end it
                proc.reload_owed = True

    def _terminate(self, proc: _Proc) -> None:
        proc.stop_owed = False
        if proc.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)

    def _hangup(self, proc: _Proc) -> None:
        proc.reload_owed = False
        if proc.popen is not None and proc.exited is not None and not proc.exited.done():
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGHUP)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Each worker finishes its batch, processes what is stored once more (as the
        pipeline thread does) and exits (SIGTERM); one still starting is told once it is ready
        (SIGTERM before would end it at once, the mail stored last left for the next start);
        one still running after timeout is killed."""
        self._stopping = True
        waits = []
        for proc in self._procs:
            if proc.restart is not None:
                proc.restart.cancel()
            if proc.popen is not None and proc.exited is not None and not proc.exited.done():
                if proc.ready:
                    self._terminate(proc)
                else:
                    proc.stop_owed = True
                waits.append((proc, proc.exited))
        for proc, exited in waits:
            try:
                await asyncio.wait_for(asyncio.shield(exited), timeout)
            except TimeoutError:
                log.error(
                    "pipeline worker %s did not stop within %gs, killing it", proc.name, timeout
                )
                assert proc.popen is not None
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.kill()
                await exited

    # --- one process ---------------------------------------------------------------------

    def _spawn(self, proc: _Proc) -> None:
        proc.restart = None
        if self._stopping or self._stop.is_set():
            return
        assert self._loop is not None
        command = [
            sys.executable,
            "-m",
            "maildesk",
            "serve",
            "--config",
            str(self.app.config.path),
            "--as-worker",
            proc.holder,
        ]
        proc.started, proc.ready, proc.idle = time.monotonic(), False, False
        try:
            popen = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except OSError as exc:
            self._died(proc, f"could not start: {exc}")
            return
        assert popen.stdin is not None
        os.set_blocking(popen.stdin.fileno(), False)
        proc.popen = popen
        proc.exited = self._loop.create_future()
        state = self._states[proc.name]
        state.pid = popen.pid
        log.info("starting pipeline worker %s (pid %d)", proc.holder, popen.pid)
        threading.Thread(
            target=self._read, args=(proc, popen), name=f"md-{proc.name}-reports", daemon=True
        ).start()

    def _read(self, proc: _Proc, popen: subprocess.Popen[bytes]) -> None:
        """The worker's reports, line by line, until it ends (in a thread of its own)."""
        assert self._loop is not None and popen.stdout is not None
        out: IO[bytes] = popen.stdout
        for line in out:
            self._loop.call_soon_threadsafe(self._report, proc, line)
        code = popen.wait()
        out.close()
        self._loop.call_soon_threadsafe(self._exited, proc, popen, code)

    def _report(self, proc: _Proc, line: bytes) -> None:
        try:
            report: dict[str, Any] = json.loads(line)
        except ValueError:
            return
        if report.get("ready"):
            proc.ready = True
            if proc.stop_owed:
                self._terminate(proc)
            elif proc.reload_owed:
                self._hangup(proc)
            return
        if report.get("idle"):
            proc.idle = True
            if self._owed:
                self._owed = False
                self.wake()
            return
        metrics = self.app.metrics
        for outcome, seconds in report.get("processed", []):
            metrics.processed(outcome, seconds)
        metrics.rules_matched(report.get("rules", []))
        for _ in range(int(report.get("store_failed", 0))):
            metrics.store_failed("pipeline")
        for kinds, retrying, failed in report.get("sent", []):
            metrics.sent(kinds, int(retrying), int(failed))
        self._states[proc.name].processed += int(report.get("count", 0))

    def _exited(self, proc: _Proc, popen: subprocess.Popen[bytes], code: int) -> None:
        proc.idle = False
        if popen.stdin is not None:
            with contextlib.suppress(OSError):
                popen.stdin.close()
        if proc.exited is not None and not proc.exited.done():
            proc.exited.set_result(code)
        if self._stopping or self._stop.is_set():
            log.info("pipeline worker %s stopped (exit code %d)", proc.holder, code)
            return
        self._died(proc, _how(code))

    def _died(self, proc: _Proc, how: str) -> None:
        """Release what it claimed, wake the others, restart it after the backoff."""
        assert self._loop is not None
        state = self._states[proc.name]
        state.restarts += 1
        state.last_error = how
        state.pid = None
        lived = time.monotonic() - proc.started
        proc.failures = 1 if lived >= STABLE_AFTER else proc.failures + 1
        delay = min(BACKOFF_FIRST * 2 ** (proc.failures - 1), BACKOFF_MAX)
        log.error(
            "pipeline worker %s %s (restart %d in %gs); its claimed mail goes to the others",
            proc.holder,
            how,
            state.restarts,
            delay,
        )
        self._loop.run_in_executor(None, self._release, proc.holder)
        proc.restart = self._loop.call_later(delay, self._spawn, proc)

    def _release(self, holder: str) -> None:
        try:
            with transaction(self.app.sessions) as session:
                released = leases.release_claims(session, holder)
        except Exception as exc:  # its claims run out instead (lease_ttl)
            log.warning("claims of %s not released (%s); they run out", holder, exc)
            return
        if released:
            log.info("released %d pending messages claimed by %s", released, holder)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.wake)

    def _send(self, proc: _Proc, byte: bytes) -> None:
        popen = proc.popen
        if popen is None or popen.stdin is None or popen.stdin.closed:
            return
        try:
            os.write(popen.stdin.fileno(), byte)
        except BlockingIOError:
            pass  # the pipe is full of wake-ups the worker has yet to read
        except OSError:
            pass  # it is dying: _exited follows


def _how(code: int) -> str:
    """How a worker process ended, in words."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
