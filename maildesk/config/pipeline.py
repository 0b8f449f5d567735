"""[pipeline]: how many processes run the pipeline beside the listener.

    [pipeline]
    workers = 1          # default 1: the pipeline in one worker process beside the listener;
                         # 0: in the daemon's own process (a thread); N: N worker processes
                         # (`serve --workers N` wins)

More than one worker needs PostgreSQL (SQLite has one writer): `maildesk serve` refuses
it at start. Every problem names the file, the section and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maildesk.config.reader import Reader, int_between

PLACE = "[pipeline]"
KEYS = ("workers",)
MAX_WORKERS = 64


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    workers: int = 1  # pipeline worker processes; 0: the in-process pipeline thread


def read_pipeline(r: Reader, t: dict[str, Any], database_url: str) -> PipelineConfig:
    """[pipeline]: workers, from 0 to MAX_WORKERS (at most 1 on a SQLite database)."""
    workers = r.take(t, PLACE, "workers", int_between(0, MAX_WORKERS), 1)
    if workers > 1 and database_url.startswith("sqlite"):
        r.problem(f"{PLACE} key 'workers'", one_writer_message(workers))
    r.done(t, PLACE, KEYS)
    return PipelineConfig(workers=workers)


def one_writer_message(workers: int) -> str:
    """Why more than one worker is refused on SQLite."""
    return (
        f"{workers} worker processes need PostgreSQL: SQLite has one writer, so at most 1 "
        "(set [database] url to a postgresql+psycopg:// URL, or workers to 0 or 1)"
    )
