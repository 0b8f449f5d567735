"""The `maildesk` command as users and MTAs run it: exit codes, output, side effects.

Commands that an MTA or an init system runs (`deliver`, `serve`) run as real subprocesses
(deliver's exit codes for a broken config or database in-process); read commands run
in-process through the same entry point.
"""

from __future__ import annotations

import json
import mailbox
import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    Desk,
    Sink,
    free_port,
    mail,
    run_cli,
    run_maildesk,
    running_desk,
    serve_process,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]


def maildesk(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "maildesk", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


# --- deliver (MTA pipe) ---------------------------------------------------------------------


@pytest.mark.slow
def test_deliver_stores_mail_and_exits_0(db_url: str, write_config: Callable[..., Path]) -> None:
    config = write_config(db_url)
    raw = mail("VPN broken", message_id="<d1@client.example.org>").as_bytes()

    done = maildesk(
        "deliver", "--config", str(config), "--recipient", "support@example.com", stdin=raw
    )

    assert done.returncode == 0, done.stderr.decode()
    code, out = run_cli("tickets", "--json", "--config", str(config))
    assert code == 0, out
    [ticket] = json.loads(out)
    assert ticket["subject"] == "VPN broken"
    code, out = run_cli("outbox", "--json", "--config", str(config))
    assert {e["kind"] for e in json.loads(out)} == {"acknowledgement", "agent_new_ticket"}


@pytest.mark.slow
def test_deliver_non_mail_exits_65_and_keeps_bytes(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url)
    junk = b"\x00\x01\x02 this is not an email at all \xff\xfe"

    done = maildesk("deliver", "--config", str(config), stdin=junk)

    assert done.returncode == 65, done.stderr.decode()
    assert b"not an email message" in done.stderr
    code, out = run_cli("quarantine", "--json", "--config", str(config))
    assert code == 0, out
    [held] = json.loads(out)
    assert held["origin"] == "deliver"
    assert held["size"] == len(junk)
    assert "not an email message" in held["reason"]
    shown = maildesk("quarantine", "show", str(held["id"]), "--config", str(config))
    assert shown.returncode == 0
    assert shown.stdout == junk


def test_deliver_exits_75_when_database_is_down(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")

    done = run_maildesk("deliver", "--config", str(config), stdin=mail().as_bytes())

    assert done.returncode == 75, done.stderr
    assert "database unavailable" in done.stderr


def test_deliver_exits_75_on_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[desk]\nname = \n", encoding="utf-8")

    done = run_maildesk("deliver", "--config", str(config), stdin=mail().as_bytes())

    assert done.returncode == 75
    assert str(config) in done.stderr


# --- serve as a process: signals -----------------------------------------------------------


@pytest.fixture
def served(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> Iterator[tuple[subprocess.Popen[bytes], Path, int, Path]]:
    port = free_port()
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", sink.port)
    config.write_text(
        config.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
    )
    log_path = tmp_path / "serve.log"
    with serve_process(config, log_path) as proc:
        yield proc, config, port, log_path


def _send(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(mail(subject))


def _tickets(config: Path) -> list[dict[str, object]]:
    code, out = run_cli("tickets", "--json", "--config", str(config))
    assert code == 0, out
    result: list[dict[str, object]] = json.loads(out)
    return result


def test_serve_stops_cleanly_on_sigterm_after_finishing_work(
    served: tuple[subprocess.Popen[bytes], Path, int, Path], sink: Sink
) -> None:
    proc, config, port, _log = served
    _send(port, "Laptop will not boot")
    proc.send_signal(signal.SIGTERM)

    assert proc.wait(20) == 0
    [ticket] = _tickets(config)
    assert ticket["subject"] == "Laptop will not boot"
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", port, timeout=2)


def test_sighup_reloads_rules_and_refuses_broken_config(
    served: tuple[subprocess.Popen[bytes], Path, int, Path],
) -> None:
    proc, config, port, log_path = served
    good = config.read_text()
    config.write_text(
        good + '\n[[rules]]\nname = "printers"\nmatch = { subject = "(?i)printer" }\n'
        'set = { queue = "infra", tags = ["printer"] }\n'
    )
    proc.send_signal(signal.SIGHUP)
    # The reload is logged; poll by mail: a printer ticket must land in infra.
    _send(port, "Printer jammed")
    ticket = wait_until(lambda: [t for t in _tickets(config) if t["subject"] == "Printer jammed"])
    assert ticket[0]["queue"] == "infra" and ticket[0]["tags"] == ["printer"]

    reloaded = config.read_text()
    config.write_text(
        good + '\n[[rules]]\nname = "broken"\nmatch = { subject = "(" }\n'
        'set = { queue = "nowhere" }\n'
    )
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: b"config reload refused" in log_path.read_bytes())
    assert b"'broken' key 'match.subject'" in log_path.read_bytes()
    config.write_text(reloaded)  # for the read commands below; the daemon is not told
    _send(port, "Printer smoking")
    smoking = wait_until(lambda: [t for t in _tickets(config) if t["subject"] == "Printer smoking"])
    assert smoking[0]["queue"] == "infra", "the old (reloaded) rules must stay in force"
    assert proc.poll() is None, "a broken config must not stop the daemon"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


# --- check-config ----------------------------------------------------------------------------


def test_check_config_accepts_the_example() -> None:
    code, out = run_cli("check-config", "--config", str(REPO / "maildesk.toml"))
    assert code == 0, out
    assert "OK" in out


def test_config_option_works_before_the_command_as_help_shows_it(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text((REPO / "maildesk.toml").read_text() + "\n[smtp2]\nlisten = 1\n")
    for argv in (
        ("--config", str(config), "check-config"),
        ("check-config", "--config", str(config)),
        ("-c", str(REPO / "maildesk.toml"), "check-config", "--config", str(config)),
    ):
        code, out = run_cli(*argv)
        # The broken file named, in whichever place: not ./maildesk.toml (which is valid).
        assert code == 2, (argv, out)
        assert str(config) in out and "smtp2" in out, (argv, out)
    code, out = run_cli("--config", str(REPO / "maildesk.toml"), "check-config")
    assert code == 0, out


def test_check_config_lists_every_error_with_its_place(tmp_path: Path) -> None:
    config = tmp_path / "maildesk.toml"
    config.write_text(
        (REPO / "maildesk.toml").read_text()
        + '\n[[rules]]\nname = "bad regex"\nmatch = { subject = "(unclosed" }\nset = {}\n'
        + '\n[[rules]]\nname = "bad queue"\nmatch = { subject = "x" }\n'
        + 'set = { queue = "nowhere", colour = "red" }\n'
        + "\n[smtp2]\nlisten = 1\n",
        encoding="utf-8",
    )
    code, out = run_cli("check-config", "--config", str(config))
    assert code == 2
    assert str(config) in out
    for place in ("bad regex", "bad queue", "nowhere", "colour", "smtp2", "subject"):
        assert place in out, f"{place!r} missing from:\n{out}"


# --- route test ------------------------------------------------------------------------------


def test_route_test_explains_and_changes_nothing(
    tmp_path: Path, db_url: str, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url)
    eml = tmp_path / "outage.eml"
    eml.write_bytes(mail("Mail server down!").as_bytes())

    code, out = run_cli("route", "test", str(eml), "--json", "--config", str(config))

    assert code == 0, out
    result = json.loads(out)
    assert result["decision"]["queue"] == "infra"
    assert result["decision"]["priority"] == "P1"
    assert result["decision"]["matched"] == ["outages are P1 for infra"]
    [rule] = result["rules"]
    assert rule["matched"] is True and "subject" in rule["reason"]
    code, text = run_cli("route", "test", str(eml), "--config", str(config))
    assert "MATCH outages are P1 for infra" in text and "queue=infra" in text
    assert _tickets(config) == []


# --- import ----------------------------------------------------------------------------------


def test_import_mbox_then_maildir_is_idempotent(
    tmp_path: Path, db_url: str, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url)
    first = mail("Cannot print", message_id="<i1@client.example.org>")
    reply = mail(
        "Re: Cannot print",
        message_id="<i2@client.example.org>",
        in_reply_to="<i1@client.example.org>",
    )
    other = mail(
        "New laptop please", message_id="<i3@client.example.org>", sender="dave@example.org"
    )
    box = mailbox.mbox(tmp_path / "in.mbox")
    for m in (first, reply, other):
        box.add(m.as_bytes())
    box.close()
    md = mailbox.Maildir(tmp_path / "Maildir")
    md.add(mail("Monitor flickers", message_id="<i4@client.example.org>").as_bytes())
    md.add(first.as_bytes())  # also in the mbox: one Message-ID is one message

    code, out = run_cli("import", str(tmp_path / "in.mbox"), "-q", "--config", str(config))
    assert code == 0, out
    assert "imported 3 messages" in out
    code, out = run_cli("import", str(tmp_path / "Maildir"), "-q", "--config", str(config))
    assert code == 0, out
    code, again = run_cli("import", str(tmp_path / "in.mbox"), "-q", "--config", str(config))
    assert "3 already imported" in again

    tickets = _tickets(config)
    assert sorted(str(t["subject"]) for t in tickets) == [
        "Cannot print",
        "Monitor flickers",
        "New laptop please",
    ]
    printing = next(t for t in tickets if t["subject"] == "Cannot print")
    code, out = run_cli("ticket", "show", str(printing["ref"]), "--json", "--config", str(config))
    inbound = [m for m in json.loads(out)["messages"] if m["direction"] == "in"]
    assert [m["message_id"] for m in inbound] == [
        "<i1@client.example.org>",
        "<i2@client.example.org>",
    ]


def test_import_of_a_missing_path_is_a_clear_error(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}")
    code, out = run_cli("import", str(tmp_path / "nope.mbox"), "--config", str(config))
    assert code == 1
    assert "nope.mbox: no such file or directory" in out


# --- read commands ---------------------------------------------------------------------------


def test_tickets_filters_and_unknown_ticket(desk: Desk) -> None:
    desk.send(mail("Server down"))
    desk.send(mail("Need a mouse"))
    desk.wait_tickets(2)

    infra = desk.json("tickets", "--queue", "infra")
    assert [t["subject"] for t in infra] == ["Server down"]
    assert {t["subject"] for t in desk.json("tickets", "--status", "new")} == {
        "Server down",
        "Need a mouse",
    }
    assert desk.json("tickets", "--status", "closed") == []
    code, out = desk.cli("ticket", "show", "MD-999")
    assert code == 1 and "not found" in out


# --- durability ------------------------------------------------------------------------------


def test_store_unavailable_answers_451_then_accepts(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    db = tmp_path / "md.db"
    config = write_config(f"sqlite:///{db}", sink.port, busy_timeout="200ms")
    with running_desk(config, sink) as desk:
        # SMTP mail is committed to the spool beside the database: its lock is the one.
        locker = sqlite3.connect(db.with_name("md-spool.db"), isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                desk.send(mail("Held back"))
            assert refused.value.smtp_code == 451
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        desk.send(mail("Held back"))
        [ticket] = desk.wait_tickets(1)
        assert ticket["subject"] == "Held back"


def test_outbox_retries_temporary_failures_then_delivers(desk: Desk) -> None:
    desk.sink.data_replies.extend(["451 4.3.0 try later", "421 4.3.0 busy"])
    desk.send(mail("Keyboard missing keys"))

    desk.sink.wait_for(2, timeout=20)
    entries = wait_until(
        lambda: (
            [e for e in desk.json("outbox") if e["status"] == "sent"]
            if all(e["status"] == "sent" for e in desk.json("outbox"))
            else None
        ),
        timeout=20,
    )
    assert max(e["attempts"] for e in entries) >= 2


def test_outbox_permanent_failure_is_marked_and_can_be_retried(desk: Desk) -> None:
    desk.sink.data_replies.extend(["550 5.1.1 no such user", "550 5.1.1 no such user"])
    desk.send(mail("Phone lost"))

    failed = wait_until(
        lambda: (
            [e for e in desk.json("outbox") if e["status"] == "failed"]
            if len([e for e in desk.json("outbox") if e["status"] != "queued"]) == 2
            else None
        )
    )
    assert len(failed) == 2
    assert all("550" in e["last_error"] for e in failed)
    assert desk.sink.messages == []

    code, out = desk.cli("outbox", "retry", str(failed[0]["id"]))
    assert code == 0, out
    desk.sink.wait_for(1, timeout=15)
    sent = wait_until(lambda: [e for e in desk.json("outbox") if e["status"] == "sent"])
    assert [e["id"] for e in sent] == [failed[0]["id"]]
    code, out = desk.cli("outbox", "retry", "--failed")
    assert code == 0 and "1 failed outbox entries queued" in out
    desk.sink.wait_for(2, timeout=15)
    wait_until(lambda: all(e["status"] == "sent" for e in desk.json("outbox")))
    code, out = desk.cli("outbox", "retry", "99999")
    assert code == 1 and "not found" in out


def test_quarantine_list_retry_and_drop(desk: Desk) -> None:
    junk = b"\x00\x00binary garbage, no headers at all"
    with smtplib.SMTP("127.0.0.1", desk.port, timeout=10) as smtp:
        smtp.sendmail("x@example.org", ["support@example.com"], junk)
    desk.wait_processed(1)

    [held] = desk.json("quarantine")
    assert held["origin"] == "smtp" and held["envelope_from"] == "x@example.org"
    assert "not an email message" in held["reason"]
    code, out = desk.cli("quarantine", "retry", str(held["id"]))
    # still not mail: stays where it is, and the exit code says so
    assert code == 65 and "quarantined again" in out
    code, out = desk.cli("quarantine", "drop", str(held["id"]))
    assert code == 0, out
    assert desk.json("quarantine") == []
    assert desk.raw_statuses() == ["dropped"]
    code, out = desk.cli("quarantine", "drop", str(held["id"]))
    assert code == 1 and "no quarantined message" in out
