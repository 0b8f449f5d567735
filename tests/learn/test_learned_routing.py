"""Learned routing end to end on a synthetic desk: training, suggestions in the routed event
and the agent notice, the threshold, rules first, retraining across daemons, feedback."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maildesk import jobs
from maildesk.app import App
from maildesk.config import load_config
from maildesk.learn import predict
from maildesk.store import repo
from maildesk.store.db import transaction
from maildesk.store.models import OutboxEntry
from tests.conftest import Clock, run_cli
from tests.learn.synthetic import LEARNING, deliver, mail, routed, seed

pytest.importorskip("sklearn")

T0 = datetime.now(UTC)  # close to the time `maildesk learn` stamps its models with


def config_for(write_config: Callable[..., Path], db_url: str, more: str = "") -> Path:
    return write_config(db_url, extra=LEARNING.format(more=more))


def trained_desk(path: Path, clock: Clock | None = None) -> App:
    """A seeded desk, trained by `maildesk learn`; its clock then past the model poll."""
    clock = clock or Clock(T0)
    app = App.build(load_config(path), clock=clock)
    seed(app)
    code, out = run_cli("learn", "--json", "--config", str(path))
    assert code == 0, out
    models = json.loads(out)["models"]
    assert [(m["label"], m["version"]) for m in models] == [("queue", 1)]
    assert models[0]["metrics"]["accuracy"] > 0.9
    clock.now += predict.POLL  # the daemon looks for a newer model
    return app


def test_a_confident_suggestion_routes_the_ticket_and_is_recorded(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    path = config_for(write_config, db_url, "apply_above = 0.6")
    app = trained_desk(path)
    try:
        deliver(app, mail("password expired", "my account is locked, please reset the login"))
        ticket, data = routed(app, "password expired")
        assert ticket.queue == "access"
        (s,) = data["suggestions"]  # type: ignore[misc]
        assert (s["label"], s["value"], s["applied"], s["version"]) == ("queue", "access", True, 1)
        assert s["confidence"] > 0.6
        assert data["queue"] == "access" and data["matched"] == []
        with transaction(app.sessions, readonly=True) as session:
            notices = session.scalars(
                select(OutboxEntry.raw).where(
                    OutboxEntry.ticket_id == ticket.id, OutboxEntry.kind == "agent_new_ticket"
                )
            ).all()
        (raw,) = notices
        notice = message_from_bytes(raw, policy=policy.default)
        text = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert f"Suggested queue: access ({s['confidence']:.2f}), applied" in text
        code, out = run_cli("ticket", "show", f"MD-{ticket.id}", "--config", str(path))
        assert code == 0 and f"queue access by model v1 ({s['confidence']:.2f})" in out, out
    finally:
        app.close()


def test_below_the_threshold_the_suggestion_is_only_recorded(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    path = config_for(write_config, db_url)  # no apply_above: suggest only
    app = trained_desk(path)
    try:
        deliver(app, mail("laptop screen", "the battery of my laptop and the charger, help"))
        ticket, data = routed(app, "laptop screen")
        assert ticket.queue == "it"  # the default queue: nothing applied
        (s,) = data["suggestions"]  # type: ignore[misc]
        assert (s["value"], s["applied"]) == ("hardware", False)
        strict = load_config(path).learning
        assert strict.threshold("queue") is None
    finally:
        app.close()


def test_a_suggestion_just_under_apply_above_is_not_applied(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    path = config_for(write_config, db_url, "apply_above = 1.0")  # no confidence is above 1
    app = trained_desk(path)
    try:
        deliver(app, mail("printer cable", "printer keyboard mouse monitor"))
        ticket, data = routed(app, "printer cable")
        assert ticket.queue == "it"
        assert [s["applied"] for s in data["suggestions"]] == [False]  # type: ignore[attr-defined]
    finally:
        app.close()


def test_no_suggestion_for_a_label_a_rule_set(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    path = config_for(write_config, db_url, "apply_above = 0.5")
    app = trained_desk(path)
    try:
        # The test config's rule sends outages to infra: the rule wins, the model is not asked.
        deliver(app, mail("VPN outage", "password login account locked unlock credentials"))
        ticket, data = routed(app, "VPN outage")
        assert ticket.queue == "infra"
        assert "suggestions" not in data
        assert data["matched"] == ["outages are P1 for infra"]
    finally:
        app.close()


def test_the_retrain_job_swaps_the_model_in_every_daemon(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    path = config_for(write_config, db_url, 'apply_above = 0.6\nretrain = "1d"')
    clock = Clock(T0)
    first = trained_desk(path, clock)
    second = App.build(load_config(path), clock=clock)  # another daemon on the same database
    try:
        deliver(second, mail("locked account", "password reset please"))
        assert routed(second, "locked account")[1]["suggestions"][0]["version"] == 1  # type: ignore[index]
        # A model made moments ago: the scheduled job leaves it (another daemon just trained).
        assert jobs.retrain(first, clock.now) == []
        clock.now += timedelta(days=1)
        deliver(second, mail("account signin", "password expired"))  # it looks now: still v1
        assert routed(second, "account signin")[1]["suggestions"][0]["version"] == 1  # type: ignore[index]
        (result,) = jobs.retrain(first, clock.now)
        assert result.version == 2
        clock.now += predict.POLL / 2  # not yet looked again
        deliver(second, mail("expired login", "password credentials"))
        assert routed(second, "expired login")[1]["suggestions"][0]["version"] == 1  # type: ignore[index]
        clock.now += predict.POLL
        deliver(second, mail("unlock signin", "permission credentials reset"))
        assert routed(second, "unlock signin")[1]["suggestions"][0]["version"] == 2  # type: ignore[index]
    finally:
        first.close()
        second.close()


def test_an_agents_change_of_a_model_routed_ticket_is_counted(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    path = config_for(write_config, db_url, "apply_above = 0.6")
    app = trained_desk(path)
    try:
        deliver(
            app,
            mail("password reset", "account locked login"),
            mail("keyboard battery", "laptop charger"),
        )
        wrong = routed(app, "keyboard battery")[0]
        assert wrong.queue == "hardware"
        code, out = run_cli(
            "ticket", "set", f"MD-{wrong.id}", "queue=it", "--as", "alice@example.com",
            "--config", str(path),
        )  # fmt: skip
        assert code == 0, out
        code, out = run_cli("learn", "--report", "--json", "--config", str(path))
        assert code == 0, out
        report: dict[str, Any] = json.loads(out)
        queue = report["labels"]["queue"]
        assert (queue["suggested"], queue["applied"], queue["corrected"]) == (2, 2, 1)
        assert queue["applied_accuracy"] == 0.5
        assert [m["version"] for m in report["models"]] == [1]
    finally:
        app.close()


def test_a_model_not_signed_by_this_desk_or_broken_means_rules_only_logged_once(
    db_url: str, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    path = config_for(write_config, db_url, "apply_above = 0.1")
    app = App.build(load_config(path))
    try:
        with transaction(app.sessions) as session:
            repo.save_model(session, "queue", b"not a pickle", "0" * 64, {}, T0)
        with caplog.at_level(logging.WARNING, logger="maildesk.learn"):
            deliver(app, mail("password one", "login"), mail("password two", "login"))
        assert routed(app, "password one")[0].queue == "it"
        assert "suggestions" not in routed(app, "password two")[1]
        said = [
            r.getMessage() for r in caplog.records if "not signed by this desk" in r.getMessage()
        ]
        assert len(said) == 1
    finally:
        app.close()


def test_route_test_shows_the_suggestion(
    db_url: str, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = config_for(write_config, db_url, "apply_above = 0.6")
    trained_desk(path).close()
    eml = tmp_path / "new.eml"
    eml.write_bytes(mail("cannot login", "password expired, account locked"))
    code, out = run_cli("route", "test", str(eml), "--json", "--config", str(path))
    assert code == 0, out
    result = json.loads(out)
    (s,) = result["suggestions"]
    assert set(s) >= {"label", "value", "confidence", "applied"}
    assert (s["label"], s["value"], s["applied"]) == ("queue", "access", True)
    assert result["decision"]["queue"] == "access"
    code, out = run_cli("route", "test", str(eml), "--config", str(path))
    assert f"suggested queue: access ({s['confidence']:.2f}, applied)" in out
