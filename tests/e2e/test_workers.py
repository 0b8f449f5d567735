"""`maildesk serve --workers 2` on PostgreSQL (SPEC "Running several daemons"): the
pipeline in two worker processes beside the listener. A few hundred messages over SMTP,
conversations split over messages sent at the same moment, identical mail sent twice, and
one worker killed with SIGKILL mid-run: every message stored once, one ticket per
conversation, every notification at the sink (each worker sends the outbox too: a
notification the killed one had sent but not yet recorded is sent again, at most one
send batch, with its Message-ID), both workers' holder ids did work, the killed one
restarted; a reload reaches the workers; SIGTERM leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from maildesk.notify.sender import BATCH as SEND_BATCH
from maildesk.pipeline.run import CLAIM_BATCH
from tests.conftest import pid_gone, run_cli, sink_server, wait_until
from tests.e2e.test_fleet import (  # noqa: F401 (pg_url: a fixture)
    DRAIN,
    Clients,
    Daemon,
    _assert_one_ticket_per_conversation,
    _assert_stored_once,
    _drained,
    _kill_all,
    count,
    fleet_config,
    free_port,
    pg_url,
    plan,
    query,
    sink_ids,
)

pytestmark = pytest.mark.slow

MESSAGES = int(os.environ.get("MAILDESK_WORKERS_MESSAGES", "300"))
CLIENTS = 6


def daemon_entry(config: Path, pid: int) -> dict[str, Any] | None:
    """This daemon's entry of `maildesk status --json`, once its workers all run."""
    code, out = run_cli("status", "--json", "--config", str(config))
    assert code == 0, out
    entry = next((d for d in json.loads(out)["daemons"] if d["pid"] == pid), None)
    return entry


def worker_pids(entry: dict[str, Any] | None) -> dict[str, int]:
    if entry is None:
        return {}
    return {
        name: int(w["pid"])
        for name, w in entry["workers"].items()
        if w.get("holder") and w.get("pid")
    }


def _processed(entry: dict[str, Any]) -> int:
    """The messages the daemon's worker processes say they processed."""
    return sum(int(w.get("processed") or 0) for w in entry["workers"].values() if w.get("holder"))


def test_two_worker_processes_share_the_mail_and_one_killed_is_restarted(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    conversations = plan(MESSAGES)
    with ExitStack() as stack:
        sink = stack.enter_context(sink_server())
        port = free_port()
        config = fleet_config(tmp_path / "maildesk.toml", pg_url, sink, port)
        daemon = Daemon(config, port, tmp_path / "serve.log", args=("--workers", "2"))
        stack.callback(_kill_all, [daemon])
        daemon.spawn()
        daemon.wait_ready()
        assert daemon.proc is not None
        listener = daemon.proc.pid
        first = wait_until(
            lambda: (
                len(worker_pids(daemon_entry(config, listener))) == 2
                and worker_pids(daemon_entry(config, listener))
            ),
            timeout=30,
        )
        seen = set(first.values())
        clients = Clients([port, port])  # a split conversation: both messages at once
        with ThreadPoolExecutor(CLIENTS) as pool:
            sending = [pool.submit(clients.conversation, c) for c in conversations]
            w1 = f"{socket.gethostname()}:{listener}/w1"
            done_by_w1 = f"SELECT count(*) FROM raw_messages WHERE claimed_by = '{w1}'"
            wait_until(  # mid-run: w1 is at work, and more mail is on its way
                lambda: clients.sent >= MESSAGES // 3 and count(pg_url, done_by_w1) > 0,
                timeout=90,
            )
            os.kill(first["w1"], signal.SIGKILL)
            killed_at = clients.sent
            for future in sending:
                future.result()
        assert killed_at < MESSAGES * 0.8, "the kill came too late to test anything"

        state: list[str] = []
        try:
            wait_until(lambda: _drained(pg_url, state), timeout=DRAIN)
        except AssertionError:
            raise AssertionError(f"not drained within {DRAIN:g}s: {state[-1]}") from None

        _assert_stored_once(pg_url, clients)
        _assert_one_ticket_per_conversation(pg_url, conversations)
        outbox = {str(r[0]) for r in query(pg_url, "SELECT message_id FROM outbox")}
        sent = sink_ids(sink)
        assert set(sent) == outbox
        again = [m for m, n in sent.items() if n != 1]
        assert len(again) <= SEND_BATCH and all(sent[m] == 2 for m in again), again

        host_pid = f"{daemon_entry(config, listener)['host']}:{listener}"  # type: ignore[index]
        holders = {str(r[0]) for r in query(pg_url, "SELECT DISTINCT claimed_by FROM raw_messages")}
        assert {f"{host_pid}/w1", f"{host_pid}/w2"} <= holders, holders

        # The counts come with the daemon's heartbeat, a moment behind the store: wait for
        # the one that has them all (a killed worker's last batch may be committed but never
        # reported: one batch less).
        entry = wait_until(
            lambda: (
                (e := daemon_entry(config, listener))
                and e["workers"]["w1"]["restarts"] == 1
                and e["workers"]["w1"]["pid"]
                and _processed(e) >= MESSAGES - CLAIM_BATCH
                and e
            ),
            timeout=20,
        )
        workers = entry["workers"]
        assert "pipeline" not in workers  # no pipeline thread beside the processes
        assert workers["w1"]["pid"] != first["w1"]
        assert "SIGKILL" in workers["w1"]["last_error"]
        assert workers["w2"]["restarts"] == 0
        assert workers["w1"]["holder"] == f"{host_pid}/w1"
        assert workers["w1"]["processed"] > 0 and workers["w2"]["processed"] > 0
        seen |= set(worker_pids(entry).values())
        code, text = run_cli("status", "--config", str(config))
        assert code == 0, text
        assert f"w2 (process {workers['w2']['pid']}, claims as {host_pid}/w2" in text

        # A reload reaches the workers: the listener and both workers read the file again.
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: daemon.log.read_text().count("config reloaded") >= 3, timeout=20)

        assert daemon.stop() == 0, daemon.log.read_text()[-3000:]
        wait_until(lambda: all(pid_gone(pid) for pid in seen), timeout=10)
        log = daemon.log.read_text()
        assert "Traceback" not in log, log[-3000:]
        assert log.count("pipeline worker") and "did not stop" not in log
        shares = query(pg_url, "SELECT claimed_by, count(*) FROM raw_messages GROUP BY 1")
        print(f"workers: {MESSAGES} messages; shares {sorted((str(h), int(n)) for h, n in shares)}")
        assert count(pg_url, "SELECT count(*) FROM raw_messages WHERE status = 'pending'") == 0
