"""A new admin's first day with the `maildesk` command: queues that vanish under their
tickets, a config being edited, failures in one line, exit codes and help.

Commands run in-process through the entry point (run_maildesk), a few as real processes
(`serve`, help and version, one of each family); each test asserts its exit code and that
stderr holds no traceback.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from maildesk.app import App
from maildesk.cli.main import build_parser
from maildesk.config import load_config
from maildesk.store.db import transaction
from maildesk.store.models import Ticket
from tests.conftest import Ran, mail, require_slow, run_maildesk

REPO = Path(__file__).resolve().parents[2]

DESK = """
[desk]
address = "support@example.com"
ref_prefix = "MD"

[database]
url = "{db_url}"

[outbound]
transport = "maildir"
path = "outbox-mail"
"""
QUEUES = """
[[queues]]
name = "it"
default = true

[[queues]]
name = "{hw}"
{renamed}
[[rules]]
name = "printers"
match = {{ subject = "(?i)printer" }}
set = {{ queue = "{hw}" }}
"""


def maildesk(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None, process: bool = False
) -> Ran:
    """`maildesk ARGS` from the repository: in this process (run_maildesk), or with
    `process` as a real `python -m maildesk` process."""
    if process:
        require_slow("a maildesk process")
        done = subprocess.run(
            [sys.executable, "-m", "maildesk", *args],
            input=stdin,
            capture_output=True,
            timeout=60,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
        result = Ran(done.returncode, done.stdout.decode(), done.stderr.decode())
    else:
        result = run_maildesk(*args, stdin=stdin, env=env, cwd=REPO)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def write(path: Path, db_url: str, hw: str = "hw", renamed: str = "", extra: str = "") -> Path:
    text = DESK.format(db_url=db_url) + QUEUES.format(hw=hw, renamed=renamed) + extra
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def desk(tmp_path: Path) -> Callable[..., Path]:
    """A config on a fresh SQLite database with one ticket (MD-1) in queue hw."""

    def make(db_url: str | None = None) -> Path:
        url = db_url or f"sqlite:///{tmp_path / 'desk.db'}"
        config = write(tmp_path / "maildesk.toml", url)
        raw = mail("Printer jammed", message_id="<p1@example.org>").as_bytes()
        done = maildesk(
            "deliver", "-c", str(config), "--recipient", "support@example.com", stdin=raw
        )
        assert done.returncode == 0, done.stderr
        return config

    return make


def queues_of(config: Path) -> dict[int, str]:
    app = App.build(load_config(config), migrate=False)
    try:
        with transaction(app.sessions, readonly=True) as session:
            return {t.id: t.queue for t in session.query(Ticket)}
    finally:
        app.close()


# --- 2. queues cannot vanish under their tickets ---------------------------------------------


@pytest.mark.slow  # check-config and queue move as processes
def test_renamed_queue_with_open_tickets_is_an_error_until_moved(
    db_url: str, desk: Callable[..., Path]
) -> None:
    config = desk(db_url)
    write(config, db_url, hw="hardware")

    refused = maildesk("check-config", "-c", str(config), process=True)

    assert refused.returncode == 2
    assert "queue 'hw' is gone but has 1 open ticket" in refused.stderr
    assert "maildesk queue move hw NEW" in refused.stderr

    moved = maildesk("queue", "move", "hw", "hardware", "-c", str(config), process=True)

    assert moved.returncode == 0, moved.stderr
    assert "moved 1 tickets (1 open) from queue 'hw' to 'hardware'" in moved.stdout
    assert queues_of(config) == {1: "hardware"}
    assert maildesk("check-config", "-c", str(config)).returncode == 0
    again = maildesk("queue", "move", "hw", "hardware", "-c", str(config))
    assert again.returncode == 1
    assert "queue 'hw' has no tickets" in again.stderr


def test_reload_refuses_a_vanished_queue_and_follows_renamed_from(
    desk: Callable[..., Path],
) -> None:
    config = desk()
    url = load_config(config).database.url
    app = App.build(load_config(config))
    try:
        write(config, url, hw="hardware")
        assert app.reload() is False
        assert [q.name for q in app.config.queues] == ["it", "hw"]  # the old config kept

        write(config, url, hw="hardware", renamed='renamed_from = "hw"')
        assert maildesk("check-config", "-c", str(config)).returncode == 0
        assert app.reload() is True
    finally:
        app.close()
    assert queues_of(config) == {1: "hardware"}
    shown = maildesk("ticket", "show", "MD-1", "-c", str(config))
    assert "queue hw -> hardware" in shown.stdout


def test_renamed_from_naming_a_queue_that_still_exists_is_an_error(tmp_path: Path) -> None:
    config = write(
        tmp_path / "maildesk.toml",
        f"sqlite:///{tmp_path / 'd.db'}",
        renamed='renamed_from = "it"',
    )

    done = maildesk("check-config", "-c", str(config))

    assert done.returncode == 2
    assert "[[queues]] 'hw' key 'renamed_from': queue 'it' still exists" in done.stderr


# --- 3. read commands work while the config is being edited ----------------------------------


@pytest.mark.slow  # `tickets` as a process, once
@pytest.mark.parametrize(
    "typo",
    ["\n[[rules]]\nname = 'x'\nif = { subject = 'y' }\n", "\n[notify\nacknowledge = false\n"],
    ids=["unknown key", "not TOML"],
)
def test_read_commands_run_on_database_alone_with_a_warning(
    desk: Callable[..., Path], typo: str
) -> None:
    config = desk()
    with config.open("a", encoding="utf-8") as f:
        f.write(typo)

    listed = maildesk("tickets", "-c", str(config), process="if =" in typo)
    shown = maildesk("ticket", "show", "MD-1", "-c", str(config))
    changed = maildesk("ticket", "note", "MD-1", "-m", "hi", "--as", "x", "-c", str(config))

    assert listed.returncode == 0, listed.stderr
    assert "Printer jammed" in listed.stdout
    assert "has errors; reading with its [database] only" in listed.stderr
    wrong = "unknown key" if "if =" in typo else "not valid TOML"
    assert wrong in listed.stderr
    assert shown.returncode == 0, shown.stderr
    assert "Printer jammed" in shown.stdout
    for reading in (("sla", "--all"), ("status",), ("quarantine", "list"), ("outbox",)):
        done = maildesk(*reading, "-c", str(config))
        assert done.returncode == 0, (reading, done.stderr)
        assert wrong in done.stderr
    assert changed.returncode == 2
    assert "configuration error" in changed.stderr and wrong in changed.stderr


# --- 4. one line, not a traceback --------------------------------------------------------------


@pytest.mark.slow  # a process without the PostgreSQL driver
def test_expected_failures_say_one_line(tmp_path: Path, desk: Callable[..., Path]) -> None:
    config = desk()
    message = tmp_path / "m.eml"
    message.write_bytes(mail("Printer").as_bytes())
    no_psycopg = tmp_path / "no-psycopg"
    (no_psycopg / "psycopg").mkdir(parents=True)
    (no_psycopg / "psycopg" / "__init__.py").write_text("raise ImportError('no psycopg')\n")
    pg = {"MAILDESK_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    cases = {  # the missing driver is an import that fails: a process of its own
        "missing file": (("route", "test", str(tmp_path / "nope.eml")), {}, "cannot read"),
        "bad --at": (("route", "test", str(message), "--at", "tomorrow"), {}, "is not a time"),
        "no driver": (
            ("tickets",),
            {**pg, "PYTHONPATH": f"{no_psycopg}{os.pathsep}{REPO}"},
            "install maildesk[postgres]",
        ),
        "unreadable config": (("tickets", "-c", str(tmp_path)), {}, "cannot read"),
    }
    for name, (args, env, said) in cases.items():
        config_args = () if "-c" in args else ("-c", str(config))
        done = maildesk(*args, *config_args, env=env, process=name == "no driver")
        assert done.returncode != 0, name
        assert said in done.stderr, (name, done.stderr)
        assert len(done.stderr.strip().splitlines()) <= 2, (name, done.stderr)


@pytest.mark.slow  # `maildesk serve`
def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        smtp = f'\n[smtp]\nlisten = "127.0.0.1:{port}"\n'
        config = write(tmp_path / "maildesk.toml", f"sqlite:///{tmp_path / 'd.db'}", extra=smtp)

        done = maildesk("serve", "-c", str(config), process=True)

    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "address already in use" in done.stderr


# --- 5. exit codes that tell the truth ---------------------------------------------------------


def test_import_of_something_that_is_no_mailbox_exits_non_zero(
    tmp_path: Path, desk: Callable[..., Path]
) -> None:
    config = desk()
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list: milk, eggs\n")

    done = maildesk("import", str(notes), "-q", "-c", str(config))

    assert done.returncode == 1
    assert "is not an mbox file" in done.stderr
    assert "imported" not in done.stdout


def test_quarantine_retry_that_quarantines_again_exits_non_zero(
    desk: Callable[..., Path],
) -> None:
    config = desk()
    junk = b"\x00\x01 not mail at all \xff"
    stored = maildesk("deliver", "-c", str(config), stdin=junk)
    assert stored.returncode == 65

    listed = maildesk("quarantine", "list", "--json", "-c", str(config))
    [row] = __import__("json").loads(listed.stdout)
    done = maildesk("quarantine", "retry", str(row["id"]), "-c", str(config))

    assert done.returncode == 65
    assert f"{row['id']}: quarantined" in done.stdout
    assert "1 of 1 quarantined again" in done.stderr


def test_status_typo_is_an_error_not_an_empty_table(desk: Callable[..., Path]) -> None:
    config = desk()

    done = maildesk("tickets", "--status", "opne", "-c", str(config))

    assert done.returncode == 2
    assert "'opne'" in done.stderr
    assert "on-hold" in done.stderr  # the valid values are listed


# --- 11. help and version ----------------------------------------------------------------------


@pytest.mark.slow  # the entry point as a process
def test_help_describes_the_product_and_version_is_shown() -> None:
    helped = maildesk("--help", process=True)
    version = maildesk("--version", process=True)

    assert helped.returncode == 0
    assert "email-driven help desk" in helped.stdout
    assert "Only this module" not in helped.stdout
    assert version.returncode == 0
    assert version.stdout.startswith("maildesk ")


def _parsers(
    parser: argparse.ArgumentParser, name: str = "maildesk"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                found += _parsers(child, f"{name} {sub}")
    return found


def test_every_option_has_help_and_lists_its_values() -> None:
    missing = []
    for name, parser in _parsers(build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
                continue
            what = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                missing.append(f"{what}: no help")
            for choice in action.choices or ():
                if str(choice) not in text:
                    missing.append(f"{what}: {choice} not listed")
    assert missing == []
