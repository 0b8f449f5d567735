"""maildesk.routing.thread: which ticket a message belongs to, from a small in-memory index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest

from maildesk.mail.message import ParsedMessage
from maildesk.routing.thread import (
    ThreadIndex,
    ThreadMatch,
    reply_tokens,
    strip_ref_tag,
    strip_reply_prefixes,
    subject_refs,
    thread_keys,
    thread_message,
    ties,
)

DESK = "support@example.com"
TOKEN_7 = "a1b2c3d4e5f60718293a"
TOKEN_9 = "ffee0011223344556677"


@dataclass
class MemoryIndex:
    """Tickets, their stored Message-IDs and reply tokens, as plain dicts."""

    tickets: set[int] = field(default_factory=set)
    message_ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)

    def ticket_exists(self, ticket_id: int) -> bool:
        return ticket_id in self.tickets

    def ticket_for_message_ids(self, message_ids: Sequence[str]) -> int | None:
        return next((self.message_ids[m] for m in message_ids if m in self.message_ids), None)

    def ticket_for_token(self, token: str) -> int | None:
        return self.tokens.get(token)


def index() -> MemoryIndex:
    return MemoryIndex(
        tickets={3, 5, 7, 9, 42},
        message_ids={
            "<in-3@client.example.org>": 3,
            "<out-5@desk.example.com>": 5,
            "<old-9@client.example.org>": 9,
        },
        tokens={TOKEN_7: 7, TOKEN_9: 9},
    )


def message(**fields: object) -> ParsedMessage:
    base = ParsedMessage(
        message_id="<new@client.example.org>",
        message_id_minted=False,
        subject="Printer jammed",
        from_addr="carol@client.example.org",
        from_name="Carol",
        to=(DESK,),
        cc=(),
        reply_to=(),
        in_reply_to=(),
        references=(),
        body_text="It is jammed again.",
        body_html="",
        attachments=(),
        headers=(),
        content_type="text/plain",
    )
    return replace(base, **fields)


DESK_ADDRESSES = ("support@example.com", "helpdesk@example.com")


def thread(msg: ParsedMessage, recipients: Sequence[str] = (DESK,)) -> ThreadMatch:
    idx: ThreadIndex = index()
    return thread_message(
        msg, idx, prefix="MD", recipients=recipients, desk_addresses=DESK_ADDRESSES
    )


# --- subject refs and prefixes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("[MD-42] Printer", [42]),
        ("[md-42] printer", [42]),
        ("Re: AW: SV: Fwd: WG: [MD-42] Printer", [42]),
        ("RE: Printer jammed [Md-42]", [42]),
        ("Printer [ MD - 42 ]", [42]),
        ("Printer [MD#42]", [42]),
        ("[MD-0042] leading zeros", [42]),
        ("[MD-3] and [MD-5]", [3, 5]),
        ("MD-42 without brackets", []),
        ("[XY-42] other prefix", []),
        ("[MDX-42] longer prefix", []),
        ("[MD-] no number", []),
        ("", []),
    ],
)
def test_subject_refs(subject: str, expected: list[int]) -> None:
    assert subject_refs(subject, "MD") == expected


def test_subject_refs_prefix_is_escaped() -> None:
    assert subject_refs("[T.K-4] and [TXK-5]", "T.K") == [4]


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: AW: SV: Fwd: WG: Printer", "Printer"),
        ("RE: re: Re:Printer", "Printer"),
        ("Re[2]: Printer", "Printer"),
        ("FW: Fwd: Printer", "Printer"),
        ("VS: Antw: TR: RV: Printer", "Printer"),
        ("  Re :  Printer  ", "Printer"),
        ("Printer", "Printer"),
        ("Re-install Windows: help", "Re-install Windows: help"),
        ("Printer Re: jam", "Printer Re: jam"),
        ("Reply needed: printer", "Reply needed: printer"),
    ],
)
def test_strip_reply_prefixes(subject: str, expected: str) -> None:
    assert strip_reply_prefixes(subject) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: [MD-42] Printer jammed", "Printer jammed"),
        ("AW: Printer jammed [md-42]", "Printer jammed"),
        ("Fwd: [MD-3][MD-5] Printer", "Printer"),
        ("[XY-1] Printer", "[XY-1] Printer"),
        ("[MD-42]", "[MD-42]"),
    ],
)
def test_strip_ref_tag(subject: str, expected: str) -> None:
    assert strip_ref_tag(subject, "MD") == expected


# --- reply tokens ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipients", "expected"),
    [
        ([f"support+{TOKEN_7}@example.com"], [TOKEN_7]),
        ([f"Support+{TOKEN_7.upper()}@Example.COM"], [TOKEN_7]),
        ([f"helpdesk+{TOKEN_9}@example.com", f"support+{TOKEN_7}@example.com"], [TOKEN_9, TOKEN_7]),
        (["support@example.com"], []),
        ([f"alice+{TOKEN_7}@example.com"], []),
        ([f"xsupport+{TOKEN_7}@example.com"], []),
        (["support+abc@example.com"], []),
        (["support+not-a-token!@example.com"], []),
        (["support+" + "a" * 65 + "@example.com"], []),
    ],
)
def test_reply_tokens(recipients: list[str], expected: list[str]) -> None:
    assert reply_tokens(recipients, DESK_ADDRESSES) == expected


def test_reply_tokens_ignore_other_domains() -> None:
    # support+TOKEN@ is ours only at our own domain; a vendor's desk uses the same scheme.
    assert reply_tokens([f"support+{TOKEN_7}@vendor.example.net"], DESK_ADDRESSES) == []


# --- thread_message: order of precedence -------------------------------------------------


def test_new_message_starts_a_new_ticket() -> None:
    assert thread(message()) == ThreadMatch(None)


def test_subject_ref_threads() -> None:
    match = thread(message(subject="Re: AW: SV: Fwd: WG: [md-42] Printer"))
    assert (match.ticket_id, match.via) == (42, "subject")
    assert "MD-42" in match.detail


def test_subject_ref_beats_in_reply_to_references_and_token() -> None:
    msg = message(
        subject="Re: [MD-42] Printer",
        in_reply_to=("<in-3@client.example.org>",),
        references=("<out-5@desk.example.com>",),
    )
    match = thread(msg, recipients=[f"support+{TOKEN_7}@example.com"])
    assert (match.ticket_id, match.via) == (42, "subject")


def test_unknown_subject_ref_falls_through_to_in_reply_to() -> None:
    msg = message(subject="Re: [MD-999] Printer", in_reply_to=("<in-3@client.example.org>",))
    assert (thread(msg).ticket_id, thread(msg).via) == (3, "in-reply-to")


def test_first_known_ref_in_subject_wins() -> None:
    assert thread(message(subject="[MD-999] [MD-5] [MD-7] Printer")).ticket_id == 5


def test_in_reply_to_beats_references_and_token() -> None:
    msg = message(
        in_reply_to=("<out-5@desk.example.com>",),
        references=("<in-3@client.example.org>",),
    )
    match = thread(msg, recipients=[f"support+{TOKEN_7}@example.com"])
    assert (match.ticket_id, match.via) == (5, "in-reply-to")


def test_outbound_message_ids_thread_too() -> None:
    match = thread(message(in_reply_to=("<out-5@desk.example.com>",)))
    assert match.ticket_id == 5


def test_unknown_in_reply_to_falls_through_to_references() -> None:
    msg = message(
        in_reply_to=("<unknown@elsewhere.example>",),
        references=("<in-3@client.example.org>",),
    )
    match = thread(msg)
    assert (match.ticket_id, match.via) == (3, "references")


def test_references_nearest_ancestor_wins() -> None:
    msg = message(references=("<old-9@client.example.org>", "<in-3@client.example.org>"))
    assert (thread(msg).ticket_id, thread(msg).via) == (3, "references")


def test_references_beat_reply_token() -> None:
    msg = message(references=("<old-9@client.example.org>",))
    match = thread(msg, recipients=[f"support+{TOKEN_7}@example.com"])
    assert (match.ticket_id, match.via) == (9, "references")


@pytest.mark.parametrize(
    ("recipients", "to", "cc"),
    [
        ([f"support+{TOKEN_7}@example.com"], (DESK,), ()),
        ([DESK], (f"support+{TOKEN_7}@example.com",), ()),
        ([DESK], ("alice@example.com",), (f"support+{TOKEN_7}@example.com",)),
    ],
    ids=["envelope", "to-header", "cc-header"],
)
def test_reply_token_threads_from_any_recipient(
    recipients: list[str], to: tuple[str, ...], cc: tuple[str, ...]
) -> None:
    match = thread(message(to=to, cc=cc), recipients=recipients)
    assert (match.ticket_id, match.via) == (7, "reply-token")


def test_unknown_token_and_ids_give_a_new_ticket() -> None:
    msg = message(
        subject="[MD-999] Printer",
        in_reply_to=("<nope@x.example>",),
        references=("<nope2@x.example>",),
    )
    assert thread(msg, recipients=["support+000000000000@example.com"]) == ThreadMatch(None)


def test_unknown_token_falls_through_to_a_known_one() -> None:
    recipients = ["support+000000000000@example.com", f"support+{TOKEN_9}@example.com"]
    assert thread(message(), recipients=recipients).ticket_id == 9


def test_token_of_another_local_part_does_not_thread() -> None:
    assert thread(message(), recipients=[f"alice+{TOKEN_7}@example.com"]).ticket_id is None


# --- what ties a message to a ticket besides its subject -----------------------------------


@pytest.mark.parametrize(
    ("fields", "recipients", "tickets", "expected"),
    [
        ({"subject": "[MD-7] x"}, [DESK], {7}, set()),  # the subject tag alone
        ({"in_reply_to": ("<in-3@client.example.org>",)}, [DESK], {3}, {"headers"}),
        ({"references": ("<out-5@desk.example.com>",)}, [DESK], {5}, {"headers"}),
        ({}, [f"support+{TOKEN_7}@example.com"], {7}, {"reply-token"}),
        ({"cc": (f"helpdesk+{TOKEN_7}@example.com",)}, [DESK], {7}, {"reply-token"}),
        (
            {"in_reply_to": ("<in-3@client.example.org>",)},
            [f"support+{TOKEN_7}@example.com"],
            {3, 7},
            {"headers", "reply-token"},
        ),
        # Another ticket's Message-ID or token ties nothing to this one.
        ({"in_reply_to": ("<in-3@client.example.org>",)}, [DESK], {7}, set()),
        ({}, [f"support+{TOKEN_9}@example.com"], {7}, set()),
        ({}, [f"alice+{TOKEN_7}@example.com"], {7}, set()),  # not a desk address
    ],
    ids=[
        "subject-only",
        "in-reply-to",
        "references",
        "token",
        "token-in-cc",
        "both",
        "other-ticket-id",
        "other-ticket-token",
        "foreign-plus-address",
    ],
)
def test_ties(
    fields: dict[str, object], recipients: list[str], tickets: set[int], expected: set[str]
) -> None:
    found = ties(
        message(**fields),
        index(),
        tickets,
        recipients=recipients,
        desk_addresses=DESK_ADDRESSES,
    )
    assert found == expected


def test_thread_keys_are_what_two_messages_of_a_conversation_share() -> None:
    first = message(message_id="<a@client.example.org>")
    reply = message(
        message_id="<b@client.example.org>",
        subject="Re: [MD-42] Printer jammed",
        in_reply_to=("<a@client.example.org>",),
        references=("<a@client.example.org>",),
    )
    assert thread_keys(first, "MD") == ["id:<a@client.example.org>"]
    assert thread_keys(reply, "MD") == [
        "id:<b@client.example.org>",
        "id:<a@client.example.org>",
        "ref:42",
    ]
    assert set(thread_keys(first, "MD")) & set(thread_keys(reply, "MD"))
    long_chain = message(references=tuple(f"<r{n}@x.example.org>" for n in range(50)))
    assert len(thread_keys(long_chain, "MD")) == 1 + 20  # its own and the nearest 20
    assert "id:<r49@x.example.org>" in thread_keys(long_chain, "MD")
