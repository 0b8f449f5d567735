"""The maildesk exception tree.

    MaildeskError                 base of everything maildesk raises on purpose
    ├── ConfigError               maildesk.toml is unreadable or invalid (carries every problem)
    ├── StoreUnavailable          the database cannot be reached or is locked; callers retry later
    ├── NotMail                   input is not an email message at all (deliver exits 65)
    ├── MessageTooComplex         a MIME tree past the parse limits (the message is quarantined)
    ├── NotFound                  a ticket, outbox entry or quarantined message does not exist
    └── InvalidRequest            a request asks for the impossible (a report period too long)

Expected outcomes of the pipeline (duplicate, ignored, quarantined) are values, not exceptions.
Library errors are mapped to these at the boundary that calls the library.
"""

from __future__ import annotations

from dataclasses import dataclass


class MaildeskError(Exception):
    """Base class of every error maildesk raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file, with its place (section, rule name, key)."""

    file: str
    place: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.place}: {self.message}"


class ConfigError(MaildeskError):
    """The configuration is invalid; `problems` lists every error found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StoreUnavailable(MaildeskError):
    """The store cannot take writes right now; the sender should retry later."""


class NotMail(MaildeskError):
    """The input is not an email message (no header block at all)."""


class MessageTooComplex(MaildeskError):
    """The MIME structure is past the part or depth limit; the message is quarantined."""


class NotFound(MaildeskError):
    """A named object (ticket, outbox entry, quarantined message) does not exist."""


class InvalidRequest(MaildeskError):
    """A request (command options, API query) asks for what cannot be given, e.g. a report
    period that ends before it starts or is longer than a report covers."""
