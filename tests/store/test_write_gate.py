"""The in-process gate of SQLite writers: one at a time, urgent ones first, the others in
the order they came (a writer that lets go and comes straight back goes behind whoever
waited meanwhile)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from maildesk.store.db import WriteGate
from tests.conftest import wait_until


def _waiting(gate: WriteGate, count: int) -> Callable[[], bool]:
    """The gate has `count` writers waiting (urgent or not)."""
    return lambda: len(gate._queue) + gate._urgent_waiting == count


def _writer(gate: WriteGate, name: str, order: list[str], *, urgent: bool = False) -> None:
    with gate.hold(urgent=urgent):
        order.append(name)


def test_a_writer_that_comes_straight_back_goes_behind_the_one_that_waited() -> None:
    gate, order = WriteGate(), []
    let_go = threading.Event()

    def steady() -> None:  # the pipeline: batch after batch, at once
        with gate.hold():
            order.append("first batch")
            let_go.wait(10)
        with gate.hold():
            order.append("second batch")

    pipeline = threading.Thread(target=steady)
    pipeline.start()
    wait_until(lambda: order == ["first batch"], timeout=10)
    sender = threading.Thread(target=_writer, args=(gate, "sender", order))
    sender.start()
    wait_until(_waiting(gate, 1), timeout=10)
    let_go.set()
    pipeline.join(10)
    sender.join(10)
    assert order == ["first batch", "sender", "second batch"]


def test_an_urgent_writer_goes_before_those_waiting_longer() -> None:
    gate, order = WriteGate(), []
    threads = []
    with gate.hold():
        for name, urgent in (("sender", False), ("pipeline", False), ("smtp", True)):
            thread = threading.Thread(
                target=_writer, args=(gate, name, order), kwargs={"urgent": urgent}
            )
            thread.start()
            threads.append(thread)
            wait_until(_waiting(gate, len(threads)), timeout=10)
        assert order == []
    for thread in threads:
        thread.join(10)
    assert order == ["smtp", "sender", "pipeline"]
