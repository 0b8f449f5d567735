"""Group commit: callers waiting on one transaction; one bad item never fails the others."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from maildesk.errors import StoreUnavailable
from maildesk.ingest.groupcommit import GroupCommit


class Writer:
    """write(batch) for GroupCommit: the first batch waits until released, so the items
    submitted meanwhile are written together; an item "bad" breaks its whole transaction."""

    def __init__(self, down: bool = False) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []
        self.down = down

    def __call__(self, batch: Sequence[str]) -> list[str]:
        self.entered.set()
        self.release.wait(timeout=10)
        self.batches.append(list(batch))
        if self.down:
            raise StoreUnavailable("database is locked")
        if "bad" in batch:
            raise ValueError("a value the column refuses")
        return [f"stored {item}" for item in batch]


def test_one_bad_item_fails_alone_and_the_rest_of_its_batch_is_committed() -> None:
    writer = Writer()
    commit = GroupCommit[str, str](writer, name="test-writer")
    try:
        first = commit.submit("first")  # taken at once: the writer waits in it
        assert writer.entered.wait(timeout=10)
        rest = {item: commit.submit(item) for item in ("a", "bad", "b")}
        writer.release.set()
        assert first.result(timeout=10) == "stored first"
        assert rest["a"].result(timeout=10) == "stored a"
        assert rest["b"].result(timeout=10) == "stored b"
        with pytest.raises(ValueError):
            rest["bad"].result(timeout=10)
        assert ["a", "bad", "b"] in writer.batches  # they were one batch, then each alone
        assert ["a"] in writer.batches and ["b"] in writer.batches
        assert commit.alive
    finally:
        commit.close()


def test_a_store_that_is_down_fails_the_batch_at_once_without_retrying_each() -> None:
    writer = Writer(down=True)
    commit = GroupCommit[str, str](writer, name="test-writer")
    try:
        first = commit.submit("first")
        assert writer.entered.wait(timeout=10)
        rest = [commit.submit(item) for item in ("a", "b", "c")]
        writer.release.set()
        for future in (first, *rest):
            with pytest.raises(StoreUnavailable):
                future.result(timeout=10)
        assert writer.batches == [["first"], ["a", "b", "c"]]
    finally:
        commit.close()
