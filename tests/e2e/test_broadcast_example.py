"""The README's major incident, with the shipped maildesk.toml and inventory and `maildesk
serve` as a process: Nagios says the core switch is down, an agent broadcasts, and the
recovery sends the all-clear. The network's subscribers and those of the mail service,
which depends on the network, get one mail each time (the Maildir transport)."""

from __future__ import annotations

import json
import mailbox
import shutil
import signal
import smtplib
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.cli.test_cli import REPO, maildesk
from tests.conftest import free_port, serve_process, wait_until
from tests.e2e.test_alerts_e2e import DATA

SUBSCRIBERS = ("all-staff@example.com", "it-ops@example.com")


def _alert(name: str, port: int) -> None:
    """A Nagios host alert as the shipped fixture, about the example's core switch."""
    raw = (DATA / name).read_bytes().replace(b"db1", b"core-sw1")
    raw = raw.replace(b"-1@mon.example.com>", f"-{uuid.uuid4().hex}@mon.example.com>".encode())
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("nagios@mon.example.com", ["support@example.com"], raw)


def _mails(box: Path) -> list[EmailMessage]:
    if not (box / "new").is_dir():
        return []
    outbox = mailbox.Maildir(box, factory=None, create=False)
    return [
        message_from_bytes(outbox.get_bytes(k), policy=policy.default) for k in list(outbox.keys())
    ]  # type: ignore[misc]


def _to(box: Path, address: str) -> list[EmailMessage]:
    return [m for m in _mails(box) if str(m["To"]) == address]


@pytest.mark.slow
def test_the_example_desk_broadcasts_a_switch_outage_and_the_all_clear(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    config = tmp_path / "maildesk.toml"
    config.write_text(
        (REPO / "maildesk.toml")
        .read_text(encoding="utf-8")
        .replace('listen = "127.0.0.1:2525"', f'listen = "127.0.0.1:{port}"')
        .replace('listen = "127.0.0.1:8025"', f'listen = "127.0.0.1:{http_port}"'),
        encoding="utf-8",
    )
    shutil.copy(REPO / "inventory.csv", tmp_path / "inventory.csv")
    assert maildesk("init", "--config", str(config)).returncode == 0
    box = tmp_path / "var" / "outbox"
    with serve_process(config, tmp_path / "serve.log") as proc:
        _alert("nagios_host_problem.eml", port)
        shown = wait_until(
            lambda: (
                json.loads(maildesk("tickets", "--json", "--config", str(config)).stdout) or None
            )
        )
        [ticket] = shown
        assert (ticket["cis"], ticket["services"]) == (["core-sw1"], ["network"])
        done = maildesk(
            "ticket", "broadcast", ticket["ref"], "--as", "bob@example.com",
            "-m", "The office network is down; mail too. Next update at 10:00.",
            "--config", str(config),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert b"broadcast to 2 subscribers (network, email)" in done.stdout
        wait_until(lambda: all(_to(box, a) for a in SUBSCRIBERS) or None)
        for address in SUBSCRIBERS:
            [notice] = _to(box, address)
            assert "Service notice: network, email" in str(notice["Subject"])
            assert "Next update at 10:00." in notice.get_content()

        _alert("nagios_host_recovery.eml", port)
        wait_until(lambda: all(len(_to(box, a)) == 2 for a in SUBSCRIBERS) or None)
        for address in SUBSCRIBERS:  # a Maildir keeps no order: told apart by subject
            subjects = sorted(str(m["Subject"]).split(":")[0] for m in _to(box, address))
            assert subjects == ["[MD-1] Service notice", "[MD-1] Service restored"], subjects
            assert len({m["In-Reply-To"] for m in _to(box, address)}) == 1  # one thread
        assert _to(box, "nagios@mon.example.com") == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert all(len(_to(box, a)) == 2 for a in SUBSCRIBERS)
