"""The README's walk-through, as a new user does it: the shipped maildesk.toml, swaks, Maildir.

Also checks that a built wheel carries everything `serve` needs (templates, migrations).
"""

from __future__ import annotations

import json
import mailbox
import signal
import subprocess
import sys
import zipfile
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest

from tests.cli.test_cli import REPO, maildesk
from tests.conftest import free_port, require_tool, serve_process, wait_until


def test_new_user_walkthrough_with_swaks(tmp_path: Path) -> None:
    swaks = require_tool("swaks")
    port, http_port = free_port(), free_port()
    config = tmp_path / "maildesk.toml"
    config.write_text(
        (REPO / "maildesk.toml")
        .read_text(encoding="utf-8")
        .replace('listen = "127.0.0.1:2525"', f'listen = "127.0.0.1:{port}"')
        .replace('listen = "127.0.0.1:8025"', f'listen = "127.0.0.1:{http_port}"'),
        encoding="utf-8",
    )
    assert maildesk("init", "--config", str(config)).returncode == 0
    log_path = tmp_path / "serve.log"
    with serve_process(config, log_path) as proc:
        sent = subprocess.run(
            [
                swaks,
                "--server",
                f"127.0.0.1:{port}",
                "--from",
                "carol@example.org",
                "--to",
                "support@example.com",
                "--header",
                "Subject: Mail server is down",
                "--body",
                "Nobody can send mail since 9:00.",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "250 2.0.0 OK: queued as" in sent.stdout

        new = tmp_path / "var" / "outbox" / "new"
        # the acknowledgement and the notice to the infra agent (bob), via the Maildir transport
        wait_until(lambda: new.is_dir() and len(list(new.iterdir())) >= 2)
        outbox = mailbox.Maildir(tmp_path / "var" / "outbox", factory=None, create=False)
        done = maildesk("tickets", "--json", "--config", str(config))
        [ticket] = json.loads(done.stdout)
        assert ticket["ref"] == "MD-1" and ticket["queue"] == "infra"
        assert ticket["priority"] == "P1" and ticket["type"] == "incident"
        keys = list(outbox.keys())  # iterating a mailbox would yield messages
        mails = [message_from_bytes(outbox.get_bytes(k), policy=policy.default) for k in keys]
        [ack] = [m for m in mails if "carol@example.org" in str(m["To"])]
        assert "[MD-1]" in str(ack["Subject"])
        assert ack["Auto-Submitted"] == "auto-replied"
        assert (tmp_path / "var" / "maildesk.db").exists(), "relative sqlite path is beside config"
        # The dashboard's API and metrics with the example token (README, docs/http.md).
        token = {"Authorization": "Bearer example-read-token-change-me"}
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", headers=token) as http:
            assert [t["ref"] for t in http.get("/api/tickets").json()] == ["MD-1"]
            assert (
                'maildesk_messages_accepted_total{source="smtp"} 1.0' in http.get("/metrics").text
            )
        assert f"http://127.0.0.1:{http_port}/status/1-" in ack.get_body(("plain",)).get_content()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log_path.read_text()


@pytest.mark.slow
def test_wheel_ships_templates_and_migrations(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("maildesk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "maildesk/templates/requester/ticket_created.txt.j2" in names
    assert "maildesk/templates/agent/ticket_created.txt.j2" in names
    assert "maildesk/templates/dashboard/overview.html.j2" in names
    assert "maildesk/store/migrations/versions/0001_initial_schema.py" in names
    assert "maildesk/store/migrations/script.py.mako" in names

    # Run from the unpacked wheel, not the source tree: init + check-config must work.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    config = tmp_path / "maildesk.toml"
    config.write_text((REPO / "maildesk.toml").read_text(encoding="utf-8"), encoding="utf-8")
    for command in ("check-config", "init"):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {str(site)!r}); import maildesk, maildesk.cli; "
                f"assert maildesk.__file__.startswith({str(site)!r}), maildesk.__file__; "
                f"sys.exit(maildesk.cli.main([{command!r}, '--config', {str(config)!r}]))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stdout + done.stderr
