"""maildesk.sla.policy: [[calendars]], [[sla_policies]] and [sla] compiled from config, every
problem reported with its place; and which policy a ticket gets."""

from __future__ import annotations

import re
import tomllib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from maildesk.config.sla import compile_sla
from maildesk.sla.calendar import ALWAYS
from maildesk.sla.policy import (
    Escalation,
    Lifecycle,
    SlaConfig,
    select_policy,
)

QUEUES = {"it", "infra"}
AGENTS = {"alice@example.com", "bob@example.com"}
RULES = {"VIP senders", "outages are P1 for infra"}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "sla.md"
H = timedelta(hours=1)


def compiled(data: dict[str, Any]) -> SlaConfig:
    sla, problems = compile_sla(
        data, queues=QUEUES, agents=AGENTS, rules=RULES, desk_timezone="Europe/Berlin"
    )
    assert problems == []
    return sla


def problems_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    return compile_sla(
        data, queues=QUEUES, agents=AGENTS, rules=RULES, desk_timezone="Europe/Berlin"
    )[1]


def docs_example() -> dict[str, Any]:
    """The first TOML block of docs/sla.md: the reference must compile as documented."""
    block = re.search(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert block is not None
    return tomllib.loads(block.group(1))


# --- the documented example ------------------------------------------------------------------


def test_the_documented_example_compiles() -> None:
    sla = compiled(docs_example())
    office = sla.calendars["office"]
    assert str(office.zone) == "Europe/Berlin"
    assert [str(s) for s in office.week[0]] == ["08:00-17:00"]  # type: ignore[index]
    assert [str(s) for s in office.week[4]] == ["08:00-15:00"]  # type: ignore[index]
    assert office.week[5] == () and date(2026, 12, 31) in office.holidays  # type: ignore[index]
    assert date(2027, 1, 1) in office.holidays
    assert sla.calendar is office and sla.leads == {
        "it": "alice@example.com",
        "infra": "bob@example.com",
    }
    assert sla.lifecycle == Lifecycle(remind_after=3, resolve_after=2, close_after=7 * 24 * H)

    standard = sla.policy("standard")
    assert standard is not None and standard.default and standard.calendar is office
    assert standard.target("first_response", "P3") == 8 * H
    assert standard.target("resolution", "P1") == 4 * H
    assert standard.warn_at == 0.75
    assert standard.escalations == (
        Escalation(notify=("lead", "assignee")),
        Escalation(on="resolution", raise_steps=1),
    )
    assert standard.lifecycle == sla.lifecycle  # inherited from [sla]

    infra = sla.policy("infra 24x7")
    assert infra is not None and infra.calendar.always and infra.queues == ("infra",)
    assert infra.target("resolution", "P2") == 24 * H  # "1d" is fine around the clock
    assert infra.target("resolution", "P4") is None  # no target for that priority
    assert infra.escalations[1] == Escalation(
        on="resolution", notify=("bob@example.com",), raise_to="P1"
    )

    vip = sla.policy("vip")
    assert vip is not None and vip.rules == ("VIP senders",)
    assert vip.lifecycle == Lifecycle(remind_after=0, resolve_after=0, close_after=7 * 24 * H)
    assert vip.escalations == (Escalation(on="resolution", notify=("lead",), move_to="infra"),)


def test_no_sla_sections_means_no_policies_and_nothing_automatic() -> None:
    sla = compiled({})
    assert sla.policies == () and sla.lifecycle == Lifecycle()
    assert sla.calendar.always and str(sla.calendar.zone) == "Europe/Berlin"
    assert SlaConfig().calendar is ALWAYS and SlaConfig().policy("anything") is None


# --- which policy a ticket gets --------------------------------------------------------------


def test_select_policy_rules_then_queue_then_default() -> None:
    sla = compiled(docs_example())

    def pick(queue: str, *rules: str) -> str | None:
        found = select_policy(sla, queue=queue, matched_rules=rules)
        return found.name if found else None

    assert pick("it") == "standard"
    assert pick("infra") == "infra 24x7"
    assert pick("infra", "VIP senders") == "vip"  # a rule beats the queue
    assert pick("it", "outages are P1 for infra") == "standard"  # that rule picks none
    assert pick("it", "VIP senders", "outages are P1 for infra") == "vip"


def test_the_last_matched_rule_that_picks_a_policy_wins() -> None:
    sla = compiled(
        {
            "sla_policies": [
                {"name": "a", "rules": ["VIP senders"], "resolution": {"P1": "1h"}},
                {"name": "b", "rules": ["outages are P1 for infra"], "resolution": {"P1": "2h"}},
            ]
        }
    )
    found = select_policy(
        sla, queue="it", matched_rules=["VIP senders", "outages are P1 for infra"]
    )
    assert found is not None and found.name == "b"
    assert select_policy(sla, queue="it", matched_rules=[]) is None  # no default: no SLA


# --- problems, each with its place -----------------------------------------------------------

CAL = {"name": "office", "hours": {"mon-fri": "09:00-17:00"}}
POLICY = {"name": "p", "resolution": {"P1": "4h"}}

PROBLEMS = [
    ({"sla": {"check_interval": "2h"}}, "[sla] key 'check_interval'", "from 1s to 1h"),
    # [[calendars]]
    ({"calendars": [{"hours": {"mon": "09:00-17:00"}}]}, "[[calendars]] #1 key 'name'", "required"),
    ({"calendars": [CAL, CAL]}, "[[calendars]] 'office'", "duplicate calendar name"),
    ({"calendars": [{**CAL, "name": "24x7"}]}, "[[calendars]] '24x7' key 'name'", "built in"),
    (
        {"calendars": [{**CAL, "timezone": "Mars/Olympus"}]},
        "[[calendars]] 'office' key 'timezone'",
        "unknown timezone",
    ),
    ({"calendars": [{"name": "office"}]}, "[[calendars]] 'office' key 'hours'", "is required"),
    (
        {"calendars": [{**CAL, "hours": {"monday": "09:00-17:00"}}]},
        "[[calendars]] 'office' key 'hours.monday'",
        "unknown day",
    ),
    (
        {"calendars": [{**CAL, "hours": {"mon": "9-5"}}]},
        "[[calendars]] 'office' key 'hours.mon'",
        "expected a shift",
    ),
    (
        {"calendars": [{**CAL, "hours": {"mon": "09:00-25:00"}}]},
        "[[calendars]] 'office' key 'hours.mon'",
        "not a time of day",
    ),
    (
        {"calendars": [{**CAL, "hours": {"mon": "09:00-09:00"}}]},
        "[[calendars]] 'office' key 'hours.mon'",
        "empty",
    ),
    (
        {"calendars": [{**CAL, "hours": {"mon-fri": "09:00-17:00", "fri": "09:00-12:00"}}]},
        "[[calendars]] 'office' key 'hours.fri'",
        "fri is already given by 'mon-fri'",
    ),
    (
        {"calendars": [{**CAL, "hours": {}}]},
        "[[calendars]] 'office' key 'hours'",
        "no working time",
    ),
    (
        {"calendars": [{**CAL, "holidays": ["25.12.2026"]}]},
        "[[calendars]] 'office' key 'holidays'",
        "expected a date",
    ),
    (
        {"calendars": [{**CAL, "holidays": ["2026-12-31..2026-12-24"]}]},
        "[[calendars]] 'office' key 'holidays'",
        "run forwards",
    ),
    (
        {"calendars": [{**CAL, "weekends": True}]},
        "[[calendars]] 'office' key 'weekends'",
        "unknown key",
    ),
    # [[sla_policies]]
    (
        {"sla_policies": [{"resolution": {"P1": "4h"}}]},
        "[[sla_policies]] #1 key 'name'",
        "required",
    ),
    ({"sla_policies": [POLICY, POLICY]}, "[[sla_policies]] 'p'", "duplicate policy name"),
    (
        {"sla_policies": [{"name": "p"}]},
        "[[sla_policies]] 'p'",
        "needs first_response or resolution",
    ),
    (
        {"sla_policies": [{**POLICY, "calendar": "office"}]},
        "[[sla_policies]] 'p' key 'calendar'",
        "unknown calendar 'office' (known: 24x7)",
    ),
    (
        {"sla_policies": [{**POLICY, "resolution": {"P9": "4h"}}]},
        "[[sla_policies]] 'p' key 'resolution.P9'",
        "unknown priority",
    ),
    (
        {"sla_policies": [{**POLICY, "resolution": {"P1": "soon"}}]},
        "[[sla_policies]] 'p' key 'resolution.P1'",
        "expected a duration",
    ),
    (
        {"sla_policies": [{**POLICY, "first_response": {"P1": "0m"}}]},
        "[[sla_policies]] 'p' key 'first_response.P1'",
        "more than zero",
    ),
    (
        {
            "calendars": [CAL],
            "sla_policies": [{**POLICY, "calendar": "office", "resolution": {"P3": "2d"}}],
        },
        "[[sla_policies]] 'p' key 'resolution.P3'",
        "write hours",
    ),
    (
        {"sla_policies": [{**POLICY, "first_response": "1h"}]},
        "[[sla_policies]] 'p' key 'first_response'",
        "table of priority",
    ),
    (
        {"sla_policies": [{**POLICY, "warn_at": 80}]},
        "[[sla_policies]] 'p' key 'warn_at'",
        "fraction",
    ),
    (
        {"sla_policies": [{**POLICY, "warn_at": True}]},
        "[[sla_policies]] 'p' key 'warn_at'",
        "fraction",
    ),
    (
        {"sla_policies": [{**POLICY, "queues": ["helpdesk"]}]},
        "[[sla_policies]] 'p' key 'queues'",
        "unknown queue 'helpdesk'",
    ),
    (
        {"sla_policies": [{**POLICY, "rules": ["VIPs"]}]},
        "[[sla_policies]] 'p' key 'rules'",
        "unknown rule 'VIPs'",
    ),
    (
        {"sla_policies": [{**POLICY, "queues": ["it"]}, {**POLICY, "name": "q", "queues": ["it"]}]},
        "[[sla_policies]] 'q' key 'queues'",
        "'it' already picks 'p'",
    ),
    (
        {
            "sla_policies": [
                {**POLICY, "rules": ["VIP senders"]},
                {**POLICY, "name": "q", "rules": ["VIP senders"]},
            ]
        },
        "[[sla_policies]] 'q' key 'rules'",
        "already picks 'p'",
    ),
    (
        {"sla_policies": [{**POLICY, "default": True}, {**POLICY, "name": "q", "default": True}]},
        "[[sla_policies]] 'q' key 'default'",
        "already the default",
    ),
    (
        {"sla_policies": [{**POLICY, "default": "yes"}]},
        "[[sla_policies]] 'p' key 'default'",
        "true or false",
    ),
    (
        {"sla_policies": [{**POLICY, "target": "4h"}]},
        "[[sla_policies]] 'p' key 'target'",
        "unknown key",
    ),
    (
        {"sla_policies": [{**POLICY, "remind_after": "3d"}]},
        "[[sla_policies]] 'p' key 'remind_after'",
        "whole number of business days",
    ),
    # escalations
    (
        {"sla_policies": [{**POLICY, "escalate": {"notify": ["lead"]}}]},
        "[[sla_policies]] 'p' key 'escalate'",
        "list of tables",
    ),
    (
        {"sla_policies": [{**POLICY, "escalate": [{}]}]},
        "[[sla_policies]] 'p' key 'escalate[0]'",
        "needs notify, raise_priority or move_to",
    ),
    (
        {"sla_policies": [{**POLICY, "escalate": [{"on": "warning", "move_to": "it"}]}]},
        "[[sla_policies]] 'p' key 'escalate[0].on'",
        "first_response, resolution or any",
    ),
    (
        {"sla_policies": [{**POLICY, "escalate": [{"notify": ["carol@example.com"]}]}]},
        "[[sla_policies]] 'p' key 'escalate[0].notify'",
        "not 'lead', 'assignee' or an agent",
    ),
    (
        {"sla_policies": [{**POLICY, "escalate": [{"raise_priority": 0}]}]},
        "[[sla_policies]] 'p' key 'escalate[0].raise_priority'",
        "number of steps",
    ),
    (
        {"sla_policies": [{**POLICY, "escalate": [{"raise_priority": "urgent"}]}]},
        "[[sla_policies]] 'p' key 'escalate[0].raise_priority'",
        "or a priority",
    ),
    (
        {"sla_policies": [{**POLICY, "escalate": [{"move_to": "helpdesk"}]}]},
        "[[sla_policies]] 'p' key 'escalate[0].move_to'",
        "unknown queue 'helpdesk'",
    ),
    (
        {"sla_policies": [{**POLICY, "escalate": [{"move_to": "it", "reassign": "bob"}]}]},
        "[[sla_policies]] 'p' key 'escalate[0].reassign'",
        "unknown key",
    ),
    (
        {
            "sla_policies": [{**POLICY, "escalate": [{"notify": ["lead"]}]}],
            "sla": {"leads": {"it": "alice@example.com"}},
        },
        "[[sla_policies]] 'p' key 'escalate[0].notify'",
        "'lead' needs a lead in [sla] leads for 'infra'",
    ),
    # [sla]
    (
        {"sla": {"leads": {"helpdesk": "alice@example.com"}}},
        "[sla] key 'leads.helpdesk'",
        "unknown queue",
    ),
    ({"sla": {"leads": {"it": "alice"}}}, "[sla] key 'leads.it'", "expected an email address"),
    ({"sla": {"calendar": "office"}}, "[sla] key 'calendar'", "unknown calendar"),
    ({"sla": {"close_after": "a week"}}, "[sla] key 'close_after'", "expected a duration"),
    ({"sla": {"resolve_after": -1}}, "[sla] key 'resolve_after'", "whole number"),
    ({"sla": {"remind": 3}}, "[sla] key 'remind'", "unknown key"),
    ({"sla": "on"}, "[sla]", "must be a table"),
    ({"sla_policies": {"name": "p"}}, "[[sla_policies]]", "array of tables"),
]


@pytest.mark.parametrize(
    ("data", "place", "message"), PROBLEMS, ids=[p[1] + " " + p[2] for p in PROBLEMS]
)
def test_problems_name_their_place(data: dict[str, Any], place: str, message: str) -> None:
    found = problems_of(data)
    assert any(p == place and message in m for p, m in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems_of(
        {
            "calendars": [{"name": "office", "hours": {"mon": "9-5"}, "colour": "blue"}],
            "sla_policies": [
                {"name": "p", "calendar": "office", "resolution": {"P9": "1h", "P1": "x"}},
            ],
            "sla": {"leads": {"nowhere": "a@example.com"}},
        }
    )
    assert [p for p, _ in found] == [
        "[[calendars]] 'office' key 'hours.mon'",
        "[[calendars]] 'office' key 'colour'",
        "[sla] key 'leads.nowhere'",
        "[[sla_policies]] 'p' key 'resolution.P9'",
        "[[sla_policies]] 'p' key 'resolution.P1'",
    ]


def test_one_mistake_is_one_problem() -> None:
    assert len(problems_of({"calendars": [{"name": "office"}]})) == 1
    assert len(problems_of({"sla_policies": [{"name": "p", "resolution": {"P9": "1h"}}]})) == 1
    assert len(problems_of({"sla_policies": [{"name": "p", "resolution": "4h"}]})) == 1


def test_a_broken_calendar_is_reported_once_not_by_every_policy_naming_it() -> None:
    found = problems_of(
        {
            "calendars": [{"name": "office", "hours": {"mon": "nine to five"}}],
            "sla_policies": [{**POLICY, "calendar": "office"}],
        }
    )
    assert [p for p, _ in found] == ["[[calendars]] 'office' key 'hours.mon'"]


def test_days_and_weeks_are_fine_on_calendars_worked_around_the_clock() -> None:
    sla = compiled(
        {
            "calendars": [
                {
                    "name": "always",
                    "hours": {"mon-sun": "00:00-24:00"},
                    "holidays": [date(2026, 12, 25)],
                }
            ],
            "sla_policies": [{**POLICY, "calendar": "always", "resolution": {"P4": "2w"}}],
        }
    )
    policy = sla.policy("p")
    assert policy is not None and policy.target("resolution", "P4") == timedelta(weeks=2)
    assert date(2026, 12, 25) in policy.calendar.holidays  # a bare TOML date works too


def test_a_lead_for_every_queue_is_only_needed_where_the_policy_reaches() -> None:
    only_infra = {**POLICY, "queues": ["infra"], "escalate": [{"notify": ["lead"]}]}
    assert (
        problems_of({"sla_policies": [only_infra], "sla": {"leads": {"infra": "bob@example.com"}}})
        == []
    )
    assert (
        problems_of(
            {
                "sla_policies": [{**only_infra, "default": True}],
                "sla": {"leads": {"*": "bob@example.com"}},
            }
        )
        == []
    )


def test_policy_settings_override_the_desk_and_false_turns_close_after_off() -> None:
    sla = compiled(
        {
            "sla": {"remind_after": 2, "resolve_after": 3, "close_after": "5d"},
            "sla_policies": [{**POLICY, "remind_after": 1, "close_after": False}],
        }
    )
    policy = sla.policy("p")
    assert policy is not None
    assert policy.lifecycle == Lifecycle(remind_after=1, resolve_after=3, close_after=None)
    assert sla.lifecycle_of("p") is policy.lifecycle
    assert sla.lifecycle_of(None) == Lifecycle(
        remind_after=2, resolve_after=3, close_after=5 * 24 * H
    )
    assert sla.lifecycle_of("removed from config") == sla.lifecycle


def test_notify_addresses_are_matched_without_case() -> None:
    sla = compiled(
        {"sla_policies": [{**POLICY, "escalate": [{"notify": ["Alice@Example.com", "Assignee"]}]}]}
    )
    policy = sla.policy("p")
    assert policy is not None and policy.escalations[0].notify == ("alice@example.com", "assignee")
