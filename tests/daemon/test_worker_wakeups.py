"""A pipeline worker process's wake-ups (daemon/pipeline_proc.py), on real pipes: `s` (the
listener wrote outbox rows) wakes the worker's sender and the worker keeps waiting for
mail; `w` (mail was stored) ends the wait; EOF (the listener is gone) stops the worker."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import cast

import pytest

from maildesk.app import App
from maildesk.daemon.pipeline_proc import SEND, WAKE, Worker


@pytest.fixture
def pipes() -> Iterator[tuple[int, int, int, int]]:
    wake_r, wake_w = os.pipe()
    report_r, report_w = os.pipe()
    old = signal.set_wakeup_fd(-1)  # the worker puts its own in place; given back after
    yield wake_r, wake_w, report_r, report_w
    signal.set_wakeup_fd(old)
    for fd in (wake_r, wake_w, report_r, report_w):
        with contextlib.suppress(OSError):  # closed by the test
            os.close(fd)


def _waiting(worker: Worker) -> tuple[threading.Thread, threading.Event]:
    returned = threading.Event()

    def wait() -> None:
        worker._wait(60)
        returned.set()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread, returned


def test_an_outbox_wake_up_wakes_the_sender_and_mail_ends_the_wait(
    pipes: tuple[int, int, int, int],
) -> None:
    wake_r, wake_w, report_r, report_w = pipes
    worker = Worker(cast(App, SimpleNamespace()), "host:1/w1", report_w, wake_fd=wake_r)
    sender_woken = threading.Event()
    worker._sender.wake = sender_woken.set  # type: ignore[method-assign]
    thread, returned = _waiting(worker)

    os.write(wake_w, SEND)
    assert sender_woken.wait(10), "the sender was not woken"
    assert not returned.wait(0.3), "an outbox wake-up ended the wait for mail"
    os.write(wake_w, WAKE)
    assert returned.wait(10), "a mail wake-up did not end the wait"
    thread.join(10)
    assert json.loads(os.read(report_r, 4096)) == {"idle": True}
    assert not worker._stop


def test_the_listener_gone_stops_the_worker(pipes: tuple[int, int, int, int]) -> None:
    wake_r, wake_w, _report_r, report_w = pipes
    worker = Worker(cast(App, SimpleNamespace()), "host:1/w1", report_w, wake_fd=wake_r)
    thread, returned = _waiting(worker)
    os.close(wake_w)
    assert returned.wait(10)
    thread.join(10)
    assert worker._stop
