"""The requester's own words: status subjects, close lines, thank-yous, survey answers."""

from __future__ import annotations

import pytest

from maildesk.routing.selfservice import (
    close_request,
    is_gratitude,
    is_status_request,
    survey_answer,
)


@pytest.mark.parametrize("subject", ["status", "STATUS", "  Status \t"])
def test_status_subject(subject: str) -> None:
    assert is_status_request(subject)


@pytest.mark.parametrize("subject", ["Re: status", "status of my printer", "", None, "statuses"])
def test_not_a_status_subject(subject: str | None) -> None:
    assert not is_status_request(subject)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("close\n", "close"),
        ("Resolved.\n\nThanks, works now", "resolved"),
        ("\n#CLOSE\n-- \nCarol", "#close"),
    ],
)
def test_close_first_line(text: str, word: str) -> None:
    assert close_request(text) == word


@pytest.mark.parametrize(
    "text", ["thanks, works now", "Please close this", "It is not resolved", "", "-- \nclose"]
)
def test_no_close_line(text: str) -> None:
    assert close_request(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "thanks",
        "Thank you!",
        "thank you very much, works now :)",
        "Danke",
        "Vielen Dank!\n\nGruß\nCarol",
        "merci",
        "Merci beaucoup !",
        "gracias",
        "Tack!",
        "Dank je wel",
        "grazie",
        "Obrigado",
        "Спасибо!",
        "ありがとうございます",
        "谢谢",
        "Thanks!\n-- \nCarol Customer\nACME Ltd, 1 Long Street, Springfield\nPhone 555 1234",
        "Thanks, that fixed it.\n\nBest regards,\nCarol",
    ],
)
def test_gratitude(text: str) -> None:
    assert is_gratitude(text)


@pytest.mark.parametrize(
    "text",
    [
        "Thanks, but it still does not work",
        "thanks! one more question: can you reset my password?",
        "Danke, aber es geht noch nicht",
        "merci mais ça ne marche pas",
        "The printer is on fire again",
        "Thanks for the reply. Unfortunately the VPN drops every ten minutes since the update",
        "",
    ],
)
def test_not_gratitude(text: str) -> None:
    assert not is_gratitude(text)


@pytest.mark.parametrize(
    ("text", "score", "comment", "bad"),
    [
        ("good", "good", "", False),
        ("Bad - took a week\nand nobody called", "bad", "took a week\nand nobody called", True),
        ("5", 5, "", False),
        ("2/5 slow", 2, "slow", True),
        ("4 stars: quick answer", 4, "quick answer", False),
    ],
)
def test_survey_answer(text: str, score: str | int, comment: str, bad: bool) -> None:
    answer = survey_answer(text)
    assert answer is not None
    assert (answer.score, answer.comment, answer.bad) == (score, comment, bad)


@pytest.mark.parametrize("text", ["goodness me", "6", "it was fine", "0 stars"])
def test_not_a_survey_answer(text: str) -> None:
    assert survey_answer(text) is None
