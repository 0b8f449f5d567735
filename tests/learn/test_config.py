"""[learning] in maildesk.toml: defaults, and errors that name file, section and key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from maildesk.config import load_config
from maildesk.errors import ConfigError


def test_defaults_and_values(write_config: Callable[..., Path]) -> None:
    path = write_config("sqlite:///x.db")
    assert load_config(path).learning.enabled is False
    path = write_config(
        "sqlite:///x.db",
        extra="""
        [learning]
        labels = ["queue", "category"]
        apply_above = { queue = 0.9 }
        retrain = "1d"
        queues = ["infra"]
        """,
    )
    learning = load_config(path).learning
    assert learning.enabled and learning.labels == ("queue", "category")
    assert learning.threshold("queue") == 0.9 and learning.threshold("category") is None
    assert learning.retrain == timedelta(days=1) and learning.queues == ("infra",)
    assert learning.min_examples == 50


@pytest.mark.parametrize(
    ("body", "place", "says"),
    [
        ('labels = ["queue", "team"]', "key 'labels'", "unknown label 'team'"),
        ("apply_above = 1.5", "key 'apply_above'", "at most 1"),
        ("apply_above = { type = 0.8 }", "key 'apply_above.type'", "not in [learning] labels"),
        ('retrain = "10s"', "key 'retrain'", "at least '1m'"),
        ('queues = ["nope"]', "key 'queues'", "unknown queue 'nope'"),
        ("min_examples = 1", "key 'min_examples'", "from 2"),
        ("apply = 0.9", "key 'apply'", "unknown key"),
    ],
)
def test_errors_name_file_section_and_key(
    write_config: Callable[..., Path], body: str, place: str, says: str
) -> None:
    path = write_config("sqlite:///x.db", extra=f"\n[learning]\n{body}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert str(path) in text and f"[learning] {place}" in text and says in text, text


def test_serve_schedules_the_retrain_job(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    from maildesk.app import App
    from maildesk.daemon.workers import SlaSchedule

    extra = '\n[learning]\nretrain = "1d"\n'
    app = App.build(load_config(write_config(f"sqlite:///{tmp_path / 'd.db'}", extra=extra)))
    schedule = SlaSchedule(app, lambda: None)
    schedule.start()
    try:
        job = schedule._scheduler.get_job("learn")  # type: ignore[union-attr]
        assert job is not None and job.trigger.interval == timedelta(days=1)
    finally:
        schedule.shutdown()
        app.close()
