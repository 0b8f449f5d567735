"""A throw-away Postfix for integration tests: a private instance with its own
config_directory, queue_directory and data_directory under one directory, listening for SMTP
on 127.0.0.1 at a given port, logging to a file there, and relaying the domains it is given
to the transports it is given (transport_maps, inline). It never reads /etc/postfix nor
touches a system Postfix.

Postfix starts as root (its master drops to mail_owner, `postfix`; the Debian package adds
that user and the `postdrop` group), so these tests need root; the queue and data
directories belong to mail_owner. Every parent of the directory must be searchable by
others: Postfix's lmtp(8) client runs as mail_owner and a pipe(8) command as its `user=`.

Needs: apt-get install -y postfix   (Debian/Ubuntu)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import pid_gone

POSTFIX = "/usr/sbin/postfix"
MAIL_OWNER = "postfix"

# The services a relay needs (no local delivery, no chroot: nothing is copied in).
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = {owner}
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mta.test
mydestination =
local_recipient_maps =
relay_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relay_domains = {domains}
transport_maps = inline:{{ {transports} }}
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
biff = no
# Tests flush the queue themselves; a deferred message is not retried behind their back.
queue_run_delay = 1h
minimal_backoff_time = 1h
maximal_backoff_time = 1h
"""


def available() -> str | None:
    """None if a private Postfix can run here, else why not."""
    if not Path(POSTFIX).exists():
        return "Postfix is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "a private Postfix must be started as root"
    try:
        pwd.getpwnam(MAIL_OWNER)
    except KeyError:
        return f"no {MAIL_OWNER} user (apt-get install postfix adds it)"
    return None


@dataclass
class Postfix:
    """One private Postfix: `start()`, send mail to `port`, `flush()`, `stop()`."""

    directory: Path
    port: int

    @property
    def config_directory(self) -> Path:
        return self.directory / "etc"

    def configure(
        self, transports: Mapping[str, str], *, main_extra: str = "", master_extra: str = ""
    ) -> None:
        """Write main.cf and master.cf: each domain relayed to its transport; the extras
        are added to each file as they are."""
        self.config_directory.mkdir(parents=True, exist_ok=True)
        for sub in ("queue", "data"):
            (self.directory / sub).mkdir(exist_ok=True)
        owner = pwd.getpwnam(MAIL_OWNER)
        os.chown(self.directory / "data", owner.pw_uid, owner.pw_gid)
        (self.config_directory / "main.cf").write_text(
            MAIN_CF.format(
                dir=self.directory,
                owner=MAIL_OWNER,
                domains=", ".join(transports),
                transports=" ".join(f"{d}={t}" for d, t in transports.items()),
            )
            + main_extra,
            encoding="utf-8",
        )
        (self.config_directory / "master.cf").write_text(
            MASTER_CF.format(port=self.port) + master_extra, encoding="utf-8"
        )

    def _postfix(self, *args: str) -> None:
        done = subprocess.run(
            [POSTFIX, "-c", str(self.config_directory), *args],
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, f"postfix {' '.join(args)}: {done.stderr!r}\n{self.log()}"

    def start(self) -> None:
        """Start it and wait until its SMTP port answers."""
        self._postfix("start")
        deadline = time.monotonic() + 30
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock,
            ):
                if sock.recv(512).startswith(b"220"):
                    return
            assert time.monotonic() < deadline, f"Postfix did not come up:\n{self.log()}"
            time.sleep(0.05)  # polling for the port to open, bounded by the deadline

    def stop(self) -> None:
        """Stop it (abort if a clean stop fails) and wait for its master to exit."""
        pid = self._master_pid()
        try:
            self._postfix("stop")
        except AssertionError:
            self._postfix("abort")
        deadline = time.monotonic() + 15
        while pid is not None and not pid_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def flush(self) -> None:
        """Retry every deferred message now (`postfix flush`)."""
        self._postfix("flush")

    def log(self) -> str:
        path = self.directory / "maillog"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def statuses(self, recipient: str) -> list[str]:
        """The delivery statuses logged for a recipient, in order (sent, deferred, ...)."""
        pattern = re.compile(rf"to=<{re.escape(recipient)}>.* status=(\w+)")
        return [m.group(1) for m in pattern.finditer(self.log())]

    def _master_pid(self) -> int | None:
        path = self.directory / "queue" / "pid" / "master.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().strip())
        return None


@contextlib.contextmanager
def running_postfix(
    directory: Path,
    port: int,
    transports: Mapping[str, str],
    *,
    main_extra: str = "",
    master_extra: str = "",
) -> Iterator[Postfix]:
    """A private Postfix in `directory` (removed afterwards), stopped however the tests end."""
    server = Postfix(directory, port)
    server.configure(transports, main_extra=main_extra, master_extra=master_extra)
    try:
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
