"""`maildesk serve --workers N` on SQLite, as a process: one worker (the default) runs the
pipeline and the outbox sender in a process of its own (mail is processed, its
acknowledgement sent from there and counted on the listener's /metrics, SIGTERM leaves no
process behind, the listener killed takes its worker down); more than one is refused at
start with a config error naming [pipeline] workers and --workers and saying PostgreSQL
is needed.
"""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    Sink,
    free_port,
    mail,
    pid_gone,
    require_slow,
    run_cli,
    serve_process,
    wait_until,
)
from tests.http.conftest import READ_TOKEN, http_config

pytestmark = pytest.mark.slow


def sqlite_config(
    write_config: Callable[..., Path], tmp_path: Path, sink: Sink, extra: str = ""
) -> tuple[Path, int]:
    port = free_port()
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", sink.port, extra=extra)
    config.write_text(
        config.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
    )
    return config, port


@pytest.mark.parametrize(
    ("args", "extra", "place"),
    [
        (["--workers", "2"], "", "serve --workers (or [pipeline] key 'workers')"),
        ([], "\n[pipeline]\nworkers = 3\n", "[pipeline] key 'workers'"),
        (["--workers", "4"], "\n[pipeline]\nworkers = 1\n", "serve --workers"),
    ],
)
def test_more_than_one_worker_on_sqlite_is_refused_at_start(
    tmp_path: Path,
    sink: Sink,
    write_config: Callable[..., Path],
    args: list[str],
    extra: str,
    place: str,
) -> None:
    require_slow("`maildesk serve`")
    config, port = sqlite_config(write_config, tmp_path, sink, extra)
    done = subprocess.run(
        [sys.executable, "-m", "maildesk", "serve", "--config", str(config), *args],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    err = done.stderr.decode()
    assert f"configuration error in {config}" in err
    assert place in err
    assert "need PostgreSQL" in err and "SQLite has one writer" in err
    with pytest.raises(OSError):  # it never listened
        smtplib.SMTP("127.0.0.1", port, timeout=2)


def test_workers_out_of_range_is_a_usage_error() -> None:
    code, out = run_cli("serve", "--workers", "-1")
    assert code == 2
    assert "--workers: must be a whole number from 0 to 64" in out


def _workers(config: Path, pid: int) -> dict[str, dict[str, object]]:
    code, out = run_cli("status", "--json", "--config", str(config))
    assert code == 0, out
    entry = next((d for d in json.loads(out)["daemons"] if d["pid"] == pid), None)
    return {} if entry is None else dict(entry["workers"])


def _worker_pid(config: Path, listener: int) -> int:
    """The pid of worker w1, once the daemon's heartbeat shows it."""
    return int(str(wait_until(lambda: _workers(config, listener).get("w1", {}).get("pid"), 30)))


ONE_WORKER = "\n[pipeline]\nworkers = 1\n"


def _sent_acknowledgements(http_port: int) -> float:
    """maildesk_notifications_sent for acknowledgements, as the listener's /metrics says."""
    response = httpx.get(
        f"http://127.0.0.1:{http_port}/metrics",
        headers={"Authorization": f"Bearer {READ_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    for line in response.text.splitlines():
        if line.startswith('maildesk_notifications_sent_total{kind="acknowledgement"}'):
            return float(line.split()[-1])
    return 0.0


def test_one_worker_on_sqlite_processes_mail_and_sigterm_leaves_no_process(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    http_port = free_port()
    config, port = sqlite_config(write_config, tmp_path, sink, http_config(http_port))
    log = tmp_path / "serve.log"
    with serve_process(config, log) as proc:  # no [pipeline]: one worker
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(mail("Scanner jammed", sender="dora@example.org"))
        acks = sink.wait_for(1, timeout=60)  # processed and sent by the worker
        assert "Scanner jammed" in str(acks[0]["Subject"])
        worker = _worker_pid(config, proc.pid)
        processed = wait_until(lambda: _workers(config, proc.pid)["w1"]["processed"], 30)
        assert processed == 1
        # Neither the pipeline nor the sender runs in the listener; it counts what was sent.
        assert not {"pipeline", "sender"} & set(_workers(config, proc.pid))
        assert wait_until(lambda: _sent_acknowledgements(http_port) == 1.0, 30)
        code, out = run_cli("tickets", "--json", "--config", str(config))
        assert code == 0, out
        assert [t["subject"] for t in json.loads(out)] == ["Scanner jammed"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    wait_until(lambda: pid_gone(worker), timeout=20)
    text = log.read_text()
    assert "pipeline worker" in text and "stopped" in text
    assert "Traceback" not in text, text


def test_the_listener_killed_takes_its_worker_down(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    config, _port = sqlite_config(write_config, tmp_path, sink, ONE_WORKER)
    with serve_process(config, tmp_path / "serve.log") as proc:
        worker = _worker_pid(config, proc.pid)
        assert not pid_gone(worker)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    wait_until(lambda: pid_gone(worker), timeout=20)  # no orphan left behind
