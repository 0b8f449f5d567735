"""Telling systemd how the daemon is doing (sd_notify(3)), without libsystemd.

Under `Type=notify` systemd passes a datagram socket in $NOTIFY_SOCKET (a path, or "@name"
in the abstract namespace); the daemon sends it READY=1 once it takes mail, RELOADING=1 and
READY=1 around a config reload, STOPPING=1 when it begins to stop, STATUS=... lines for
`systemctl status`, and WATCHDOG=1 when `WatchdogSec=` asks for it ($WATCHDOG_USEC). Without
$NOTIFY_SOCKET every call does nothing. A message that cannot be sent is dropped: systemd
being busy must never hold up the mail.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """The daemon's line to systemd (a no-op outside a notify unit)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = _watchdog_interval(env)
        self._last_watchdog = -float("inf")

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one notification of these NAME=value lines; whether it went."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC tells systemd (Type=notify-reload) which reload this answers.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading the config")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        """WATCHDOG=1 when half of WatchdogSec has passed since the last one."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_watchdog >= self.watchdog_interval:
            self._last_watchdog = now
            self.send("WATCHDOG=1")


def _address(value: str) -> str | bytes | None:
    """$NOTIFY_SOCKET as a socket address: a path, or "@name" as an abstract one."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value:
        log.warning("NOTIFY_SOCKET=%r is not a unix socket address; not notifying systemd", value)
    return None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between WATCHDOG=1 (half of $WATCHDOG_USEC), if the watchdog is ours."""
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were started by the daemon)
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None
