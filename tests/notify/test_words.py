"""What a person reads in mail and tables: instants in the desk's timezone, lists and
missing values in words, a server's refusal as its text (never a Python repr)."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta

from maildesk.config.model import OutboundConfig
from maildesk.mail import transport
from maildesk.mail.render import Templates
from maildesk.mail.words import when, words

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_when_writes_an_instant_in_the_desk_timezone() -> None:
    crossed = datetime(2026, 12, 1, 18, 10, 46, 280654, tzinfo=UTC)
    assert when(crossed, "Europe/Berlin", now=NOW) == "Tue 1 Dec 19:10 (Europe/Berlin)"
    assert when("2026-12-01T18:10:46.280654Z", "Europe/Berlin", now=NOW) == (
        "Tue 1 Dec 19:10 (Europe/Berlin)"
    )
    assert when("2025-03-02T09:15:00+00:00", "UTC", now=NOW) == "Sun 2 Mar 2025 09:15 (UTC)"
    assert when(None, "UTC") == "not set"


def test_words_never_shows_a_python_repr() -> None:
    assert words(["out-of-hours"]) == "out-of-hours"
    assert words(("vip", "printer")) == "vip, printer"
    assert words(None) == "none"
    assert words([]) == "none"
    assert words(b"5.1.1 User unknown") == "5.1.1 User unknown"
    assert words(3) == "3"


def test_every_template_has_the_filters() -> None:
    templates = Templates(timezone="Europe/Berlin")
    env = templates._envs[None][0]  # the filters are the environment's, for every template
    rendered = env.from_string("{{ at | when }} / {{ tags | words }}").render(
        at="2026-12-01T18:10:46Z", tags=["out-of-hours"]
    )
    assert rendered.endswith("19:10 (Europe/Berlin) / out-of-hours")
    assert rendered.startswith("Tue 1 Dec")


def test_a_refused_recipient_reads_as_the_server_wrote_it() -> None:
    cfg = OutboundConfig(
        transport="smtp",
        host="mx.example.org",
        port=25,
        path=None,
        starttls=False,
        username="desk",
        password="secret",
        timeout=10,
        max_attempts=3,
        backoff=timedelta(seconds=1),
        max_backoff=timedelta(seconds=1),
    )
    refused = smtplib.SMTPRecipientsRefused({"ghost@example.org": (550, b"5.1.1 User unknown")})
    error, _ = transport._classify(refused, cfg)
    assert error is not None
    assert str(error) == "ghost@example.org: 550 5.1.1 User unknown"
    login = smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication failed")
    error, _ = transport._classify(login, cfg)
    assert error is not None and "b'" not in str(error)
    assert str(error).endswith("535 5.7.8 Authentication failed")
