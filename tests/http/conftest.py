"""A running desk with `[http]` on (a read and an admin token, the status page), and httpx
clients that talk to it over real sockets."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Desk, Sink, free_port, running_desk, wait_until

READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"

# A port of its own (not 0): the acknowledgement's status link names it.
HTTP_CONFIG = """
[http]
listen = "127.0.0.1:{port}"
status_page = true
tokens = [
  {{ name = "ops", token = "{read}", role = "read" }},
  {{ name = "lead", token = "{admin}", role = "admin" }},
]
"""


def http_config(port: int | None = None) -> str:
    return HTTP_CONFIG.format(port=port or free_port(), read=READ_TOKEN, admin=ADMIN_TOKEN)


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
def web_desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Web]:
    """A running desk with HTTP, on each database backend."""
    with running_desk(write_config(db_url, sink.port, extra=http_config()), sink) as desk:
        yield web_for(desk)


@pytest.fixture
def sqlite_web_desk(tmp_path: Path, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Web]:
    """A running desk with HTTP on SQLite only (for the slower, HTTP-only tests)."""
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", sink.port, extra=http_config())
    with running_desk(config, sink) as desk:
        yield web_for(desk)


def status_link(web: Web, subject: str) -> str:
    """The status page link in the acknowledgement of the ticket with that subject."""
    acks = wait_until(
        lambda: [m for m in web.desk.sink.parsed() if subject in str(m["Subject"])
                 and "carol@example.org" in str(m["To"])]
    )  # fmt: skip
    body = acks[0].get_body(("plain",))
    assert body is not None
    found = re.search(r"(http://127\.0\.0\.1:\d+/status/\S+)", body.get_content())
    assert found, body.get_content()
    return found.group(1)
