"""Group commit: writes that callers wait for, done together, one transaction (one disk sync)
for everything waiting.

Eight SMTP clients sending at once would otherwise make eight commits in a row, each a disk
sync; here the first waits for one commit, and whatever arrived meanwhile shares the next.
Every caller still gets its answer only after its own item is committed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 64


class GroupCommit(Generic[T, R]):
    """submit() an item, wait on the future; one thread calls write(batch) for all waiting."""

    def __init__(self, write: Callable[[Sequence[T]], Sequence[R]], *, name: str) -> None:
        self._write = write
        self._queue: queue.Queue[tuple[T, Future[R]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        future: Future[R] = Future()
        self._queue.put((item, future))
        return future

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

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
            self._flush(batch)
            if stop:
                return

    def _flush(self, batch: list[tuple[T, Future[R]]]) -> None:
        try:
            results = self._write([item for item, _ in batch])
        except BaseException as exc:  # every caller hears of the failure (SMTP: 451)
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
