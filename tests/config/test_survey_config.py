"""[survey] and [desk] gratitude_reopens: read, defaulted, and each problem named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from maildesk.config import load_config
from tests.config.test_config import MINIMAL, problems, write


def test_survey_defaults_off_and_reads_its_keys(tmp_path: Path) -> None:
    plain = load_config(write(tmp_path, MINIMAL))
    assert not plain.survey.enabled and not plain.survey.applies_to("it")
    assert plain.desk.gratitude_reopens is False
    text = MINIMAL.replace("[desk]\n", "[desk]\ngratitude_reopens = true\n") + (
        '\n[survey]\nenabled = true\ndelay = "2h"\nqueues = ["it"]\n'
    )
    config = load_config(write(tmp_path, text))
    assert (config.survey.enabled, config.survey.delay) == (True, timedelta(hours=2))
    assert config.survey.applies_to("it") and not config.survey.applies_to("other")
    assert config.desk.gratitude_reopens is True


@pytest.mark.parametrize(
    ("body", "place", "words"),
    [
        ('enabled = "yes"', "[survey] key 'enabled'", ("must be bool",)),
        ('delay = "soon"', "[survey] key 'delay'", ()),
        ('queues = ["nope"]', "[survey] key 'queues'", ("unknown queue", "nope")),
        ("every = 3", "[survey] key 'every'", ("unknown key",)),
    ],
)
def test_survey_problems_name_file_section_and_key(
    tmp_path: Path, body: str, place: str, words: tuple[str, ...]
) -> None:
    found = problems(write(tmp_path, MINIMAL + "\n[survey]\n" + body + "\n"))
    [problem] = [p for p in found if p.place == place]
    assert all(w in problem.message for w in words), problem.message
