"""Group commit: writes that callers wait for, done together, one transaction (one disk sync)
for everything waiting.

Eight SMTP clients sending at once would otherwise make eight commits in a row, each a disk
sync; here the first waits for one commit, and whatever arrived meanwhile shares the next.
Every caller still gets its answer only after its own item is committed.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any, Generic, TypeVar

from maildesk.errors import StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 64


class GroupCommit(Generic[T, R]):
    """submit() an item, wait on the future; one thread calls write(batch) for all waiting.

    A caller may stop waiting (an SMTP client that disconnects or times out cancels its
    future): an item not yet in a batch is then skipped (its sender never heard 250 and
    sends it again); one already in a batch is committed with the rest. Nothing a caller
    does can stop the writer thread; should it die anyway, restart() starts another one on
    the same queue (the daemon's supervisor checks `alive`).
    """

    def __init__(self, write: Callable[[Sequence[T]], Sequence[R]], *, name: str) -> None:
        self._write = write
        self._name = name
        self._queue: queue.Queue[tuple[T, Future[R]] | None] = queue.Queue()
        self.error: BaseException | None = None  # what ended the last thread, if not close()
        self._thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run_logged, name=self._name, daemon=True)
        thread.start()
        return thread

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def restart(self) -> None:
        """Start a new writer thread if the current one has died (items queued stay)."""
        if not self._thread.is_alive():
            self._thread = self._start()
            self.error = None

    def submit(self, item: T) -> Future[R]:
        future: Future[R] = Future()
        self._queue.put((item, future))
        return future

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run_logged(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # kept for the supervisor to report
            self.error = exc

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            # From here a caller can no longer cancel: its item is written with the batch.
            # One that already gave up is left out.
            batch = [entry for entry in batch if entry[1].set_running_or_notify_cancel()]
            if batch:
                self._flush(batch)
            if stop:
                return

    def _flush(self, batch: list[tuple[T, Future[R]]]) -> None:
        try:
            results = list(self._write([item for item, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, StoreUnavailable):
                # Something in one item broke the transaction: write each alone, so only
                # the item at fault fails (SMTP: 451 for it) and the others are committed.
                log.warning(
                    "%s: a batch of %d failed (%s); writing each alone", self._name, len(batch), exc
                )
                for entry in batch:
                    self._flush([entry])
                return
            if not isinstance(exc, StoreUnavailable):
                log.error("%s: write failed: %s", self._name, exc, exc_info=exc)
            _fail(batch, exc)  # the store is down for all, or this one item is at fault
            return
        except BaseException as exc:  # the thread is being stopped: nobody may wait forever
            _fail(batch, exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            with _settling(future):
                future.set_result(result)


def _fail(batch: Sequence[tuple[Any, Future[Any]]], exc: BaseException) -> None:
    for _, future in batch:
        with _settling(future):
            future.set_exception(exc)


@contextlib.contextmanager
def _settling(future: Future[Any]) -> Iterator[None]:
    """Give a waiting caller its answer; a future settled already is left as it is."""
    try:
        yield
    except InvalidStateError:
        log.warning("%r was settled already; answer dropped", future)
