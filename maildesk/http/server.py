"""The HTTP listener in the daemon's own event loop: uvicorn's Server, started and stopped
by the daemon (not `Server.serve()`, which would take over the process's signals).

uvicorn's access log is off: a status page's path is its token, and nothing that opens
anything belongs in a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import uvicorn

from maildesk.app import App
from maildesk.errors import MaildeskError
from maildesk.http.app import build_app

log = logging.getLogger(__name__)


class HttpListener:
    """`[http] listen`: start() in the running loop, then stop()."""

    def __init__(self, app: App, wake: Callable[[], None] = lambda: None) -> None:
        http = app.config.http
        assert http.host is not None
        config = uvicorn.Config(
            build_app(app, wake),
            host=http.host,
            port=http.port,
            log_config=None,  # the daemon's logging, as configured by `maildesk serve`
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._ticks: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> None:
        server, config = self._server, self._server.config
        config.load()
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup()
        except SystemExit:  # uvicorn exits when it cannot bind; say where instead
            raise MaildeskError(
                f"[http] listen {config.host}:{config.port}: cannot listen there"
            ) from None
        self.port = server.servers[0].sockets[0].getsockname()[1]
        # The main loop only keeps the Date header fresh and notices should_exit.
        self._ticks = asyncio.create_task(server.main_loop(), name="http-ticks")
        log.info("HTTP API, metrics and dashboard on http://%s:%s/", config.host, self.port)

    async def stop(self) -> None:
        """Stop taking connections, let requests in progress finish (a few seconds)."""
        server = self._server
        server.should_exit = True
        if self._ticks is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticks
        await server.shutdown()
