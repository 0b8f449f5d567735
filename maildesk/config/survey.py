"""[survey]: the satisfaction survey mailed to the requester after a ticket is resolved.

    [survey]
    enabled = true
    delay = "1h"                       # after the resolution
    queues = ["it"]                    # only these queues' tickets (absent: every queue)

Every problem names the file, the section and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from maildesk.config.reader import Reader, parse_duration

PLACE = "[survey]"
KEYS = ("enabled", "delay", "queues")


@dataclass(frozen=True, kw_only=True)
class SurveyConfig:
    enabled: bool = False
    delay: timedelta = timedelta(hours=1)
    queues: tuple[str, ...] = ()  # empty: every queue

    def applies_to(self, queue: str) -> bool:
        """Whether a ticket of this queue gets a survey."""
        return self.enabled and (not self.queues or queue in self.queues)


def read_survey(r: Reader, t: dict[str, Any], *, queues: set[str]) -> SurveyConfig:
    """[survey]: enabled, delay and queues, each checked."""
    enabled = bool(r.take(t, PLACE, "enabled", bool, False))
    delay = r.take(t, PLACE, "delay", parse_duration, timedelta(hours=1))
    if delay < timedelta(0):
        r.problem(f"{PLACE} key 'delay'", "must not be negative")
    names = r.strings(t, PLACE, "queues")
    for name in names:
        if name not in queues:
            r.problem(f"{PLACE} key 'queues'", f"unknown queue {name!r}")
    r.done(t, PLACE, KEYS)
    return SurveyConfig(enabled=enabled, delay=delay, queues=names)
