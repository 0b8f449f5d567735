"""[fleet] lease_ttl and a mailbox's own lease_ttl, and [pipeline] workers: read, defaulted,
and each problem named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from maildesk.config import load_config
from tests.config.test_config import MINIMAL, problems, write

MAILBOX = """
[[mailboxes]]
name = "support"
host = "imap.example.com"
username = "support@example.com"
password = "secret"
"""


def test_lease_ttl_defaults_to_a_minute_and_a_mailbox_may_set_its_own(tmp_path: Path) -> None:
    plain = load_config(write(tmp_path, MINIMAL + MAILBOX))
    assert plain.fleet.lease_ttl == timedelta(seconds=60)
    assert plain.lease_ttl(plain.mailboxes[0]) == timedelta(seconds=60)
    text = MINIMAL + '\n[fleet]\nlease_ttl = "20s"\n' + MAILBOX
    assert load_config(write(tmp_path, text)).lease_ttl(plain.mailboxes[0]) == timedelta(seconds=20)
    own = load_config(write(tmp_path, text + 'lease_ttl = "5s"\n'))
    assert own.lease_ttl(own.mailboxes[0]) == timedelta(seconds=5)


@pytest.mark.parametrize(
    ("extra", "place", "words"),
    [
        ('\n[fleet]\nlease_ttl = "0s"\n', "[fleet] key 'lease_ttl'", ("from 1s to 1h",)),
        ('\n[fleet]\nlease_ttl = "soon"\n', "[fleet] key 'lease_ttl'", ()),
        ("\n[fleet]\nttl = 3\n", "[fleet] key 'ttl'", ("unknown key", "lease_ttl")),
        (MAILBOX + 'lease_ttl = "2h"\n', "[[mailboxes]] 'support' key 'lease_ttl'", ("1h",)),
    ],
)
def test_lease_ttl_problems_name_file_section_and_key(
    tmp_path: Path, extra: str, place: str, words: tuple[str, ...]
) -> None:
    found = problems(write(tmp_path, MINIMAL + extra))
    [problem] = [p for p in found if p.place == place]
    assert all(w in problem.message for w in words), problem


PG = '\n[database]\nurl = "postgresql+psycopg://desk@db.example.com/desk"\n'


def test_pipeline_workers_default_to_one_and_postgresql_takes_several(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL)).pipeline.workers == 1
    assert (
        load_config(write(tmp_path, MINIMAL + "\n[pipeline]\nworkers = 0\n")).pipeline.workers == 0
    )
    several = load_config(write(tmp_path, MINIMAL + PG + "\n[pipeline]\nworkers = 8\n"))
    assert several.pipeline.workers == 8


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("\n[pipeline]\nworkers = -1\n", ("from 0 to 64",)),
        ("\n[pipeline]\nworkers = 65\n", ("from 0 to 64",)),
        ('\n[pipeline]\nworkers = "2"\n', ("whole number",)),
        ("\n[pipeline]\nworkers = 2\n", ("need PostgreSQL", "SQLite has one writer")),
    ],
)
def test_pipeline_workers_problems_name_file_section_and_key(
    tmp_path: Path, extra: str, words: tuple[str, ...]
) -> None:
    found = problems(write(tmp_path, MINIMAL + extra))
    [problem] = [p for p in found if p.place == "[pipeline] key 'workers'"]
    assert all(w in problem.message for w in words), problem
