"""The words of catalog mail: the catalog subject, Request: subjects, Field: lines, answers."""

from __future__ import annotations

import pytest

from maildesk.routing.catalog import (
    CatalogField,
    CatalogItem,
    approval_answer,
    field_problems,
    find_item,
    is_catalog_request,
    normalise_fields,
    read_fields,
    requested_item,
)

LAPTOP = CatalogItem(
    name="new-laptop",
    title="New laptop",
    fields=(
        CatalogField(name="user", label="For whom", required=True),
        CatalogField(name="model", label="Model", required=True, choices=("standard", "dev")),
        CatalogField(name="needed_by", label="Needed by", kind="date"),
        CatalogField(name="count", label="Count", kind="number"),
    ),
)


@pytest.mark.parametrize(
    ("subject", "yes"),
    [("catalog", True), (" HELP ", True), ("Catalog?", True), ("help me", False), ("", False)],
)
def test_catalog_subject_alone(subject: str, yes: bool) -> None:
    assert is_catalog_request(subject) is yes


def test_request_subject_names_an_item_by_name_or_title() -> None:
    assert requested_item("Request: New Laptop") == "New Laptop"
    assert requested_item("re: REQUEST:new-laptop ") == "new-laptop"
    assert requested_item("My request: laptop") is None
    assert find_item((LAPTOP,), "new  LAPTOP") is LAPTOP
    assert find_item((LAPTOP,), "new-laptop") is LAPTOP
    assert find_item((LAPTOP,), "old laptop") is None


def test_field_lines_by_label_or_name_and_the_rest_kept() -> None:
    values, rest = read_fields("Hi,\nFOR WHOM: dana\nmodel : Dev\nColour: red\nThanks", LAPTOP)
    assert values == {"user": "dana", "model": "Dev"}
    assert rest == "Hi,\nColour: red\nThanks"
    assert normalise_fields(LAPTOP, values) == {"user": "dana", "model": "dev"}


def test_missing_and_invalid_fields_are_named() -> None:
    found = field_problems(LAPTOP, {"model": "huge", "needed_by": "soon", "count": "two"})
    assert found["user"] == "missing"
    assert "standard, dev" in found["model"]
    assert "date" in found["needed_by"] and "number" in found["count"]
    assert field_problems(LAPTOP, {"user": "x", "model": "standard"}) == {}


@pytest.mark.parametrize(
    ("text", "decision", "comment"),
    [
        ("approve", "approved", ""),
        ("Approve.\n\nfine by me", "approved", "fine by me"),
        ("#approve", "approved", ""),
        ("reject not in budget", "rejected", "not in budget"),
        ("#reject: too expensive\n--\nAnn", "rejected", "too expensive"),
        ("\n\nREJECT", "rejected", ""),
    ],
)
def test_approval_answers(text: str, decision: str, comment: str) -> None:
    answer = approval_answer(text)
    assert answer is not None and (answer.decision, answer.comment) == (decision, comment)


@pytest.mark.parametrize("text", ["I approve of this", "approval?", "", "-- \nAnn", "ok"])
def test_other_first_lines_are_no_answer(text: str) -> None:
    assert approval_answer(text) is None
