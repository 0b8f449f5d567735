"""A running desk with `[http]` on (a read and an admin token, the status page), and httpx
clients that talk to it over real sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Desk, Sink, running_desk

READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"

HTTP_CONFIG = f"""
[http]
listen = "127.0.0.1:0"
status_page = true
tokens = [
  {{ name = "ops", token = "{READ_TOKEN}", role = "read" }},
  {{ name = "lead", token = "{ADMIN_TOKEN}", role = "admin" }},
]
"""


@dataclass
class Web:
    """The desk and its HTTP side."""

    desk: Desk
    base_url: str

    def client(self, token: str | None = READ_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


def web_for(desk: Desk) -> Web:
    http = desk.daemon.http
    assert http is not None and http.port, "the HTTP listener did not start"
    return Web(desk, f"http://127.0.0.1:{http.port}")


@pytest.fixture
def web_desk(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> Iterator[Web]:
    """A running desk with HTTP, on each database backend."""
    with running_desk(write_config(db_url, sink.port, extra=HTTP_CONFIG), sink) as desk:
        yield web_for(desk)


@pytest.fixture
def sqlite_web_desk(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> Iterator[Web]:
    """A running desk with HTTP on SQLite only (for the slower, HTTP-only tests)."""
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", sink.port, extra=HTTP_CONFIG)
    with running_desk(config, sink) as desk:
        yield web_for(desk)
