"""[priority_matrix] impact_from_service: read (off by default), and its problems named by
file, section and key, as is any other key the matrix does not know."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from maildesk.config import load_config
from tests.config.test_config import MINIMAL, write
from tests.config.test_services_config import problems


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("", False),
        ("[priority_matrix]\n", False),
        ("[priority_matrix]\nimpact_from_service = false\n", False),
        ("[priority_matrix]\nimpact_from_service = true\n", True),
        ('[priority_matrix]\nimpact_from_service = true\nlow = { high = "P2" }\n', True),
    ],
)
def test_the_switch_is_read(tmp_path: Path, section: str, expected: bool) -> None:
    config = load_config(write(tmp_path, MINIMAL + section))
    assert config.impact_from_service is expected
    assert config.route_context(datetime.now(UTC)).impact_from_service is expected
    if "low" in section:
        assert config.priority_matrix[("low", "high")] == "P2"


@pytest.mark.parametrize(
    ("section", "place", "words"),
    [
        (
            'impact_from_service = "yes"',
            "[priority_matrix] key 'impact_from_service'",
            ("must be bool", "'yes'"),
        ),
        (
            "impact_from_services = true",
            "[priority_matrix] key 'impact_from_services'",
            ("unknown key", "impact_from_service", "high, medium, low"),
        ),
        (
            "huge = { high = 'P1' }",
            "[priority_matrix] key 'huge'",
            ("unknown key",),
        ),
        (
            "low = { high = 'P9' }",
            "[priority_matrix] key 'low.high'",
            ("unknown priority 'P9'",),
        ),
    ],
)
def test_problems_name_the_key(
    tmp_path: Path, section: str, place: str, words: tuple[str, ...]
) -> None:
    path = write(tmp_path, MINIMAL + "[priority_matrix]\n" + section + "\n")
    [problem] = problems(path)
    assert problem.file == str(path) and problem.place == place, problem
    assert all(w in problem.message for w in words), problem
