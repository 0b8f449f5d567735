"""Agent proof: HMAC reply tokens and trusted Authentication-Results (maildesk.proof)."""

from __future__ import annotations

import pytest

from maildesk.proof import Token, TokenCodec, authentication_results, plus_address

CODEC = TokenCodec(b"0123456789abcdef0123456789abcdef")


ALICE = "alice@example.com"


def test_token_round_trip_per_role() -> None:
    agent, requester = CODEC.mint(42, "agent", ALICE), CODEC.mint(42, "requester")
    assert agent != requester
    assert agent.startswith("42-a") and requester.startswith("42-r")
    assert CODEC.verify(agent, ALICE) == Token(42, "agent")
    assert CODEC.verify(agent, "Alice@Example.com") == Token(42, "agent")
    assert CODEC.verify(requester.upper()) == Token(42, "requester")  # MTAs may fold case


def test_an_agent_token_proves_only_its_own_agent() -> None:
    token = CODEC.mint(42, "agent", ALICE)
    assert CODEC.verify(token, "bob@example.com") is None
    assert CODEC.verify(token) is None  # no sender, no proof
    with pytest.raises(ValueError):
        CODEC.mint(42, "agent")


def test_a_token_does_not_move_to_another_ticket_or_role() -> None:
    token = CODEC.mint(42, "agent", ALICE)
    mac = token.partition("-a")[2]
    assert CODEC.verify(f"43-a{mac}", ALICE) is None
    assert CODEC.verify(f"42-r{mac}", ALICE) is None
    assert CODEC.verify(token[:-1] + ("0" if token[-1] != "0" else "1"), ALICE) is None


def test_another_secret_does_not_verify() -> None:
    other = TokenCodec(b"another secret of sixteen+ bytes")
    assert other.verify(CODEC.mint(42, "agent", ALICE), ALICE) is None


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError):
        TokenCodec(b"short")


def test_plus_address() -> None:
    assert plus_address("support@example.com", "7-r00") == "support+7-r00@example.com"


TRUSTED = ["mx.example.com"]


@pytest.mark.parametrize(
    ("header", "passed"),
    [
        ("mx.example.com; dmarc=pass header.from=example.com", True),
        ("mx.example.com; dkim=pass header.d=example.com header.s=sel", True),
        ("mx.example.com; dkim=pass header.d=mail.example.com", True),
        ("mx.example.com; spf=pass smtp.mailfrom=alice@example.com", False),  # SPF alone
        ("mx.example.com; dkim=pass header.d=evil.example.net", False),
        ("mx.example.com; dmarc=fail header.from=example.com", False),
        ("mx.example.com; spf=pass smtp.mailfrom=x@evil.example.net", False),
        ("attacker.example.net; dmarc=pass header.from=example.com", False),
        ("not a header at all ;;; ===", False),
    ],
)
def test_authentication_results(header: str, passed: bool) -> None:
    verdict = authentication_results([header], TRUSTED, "alice@example.com")
    assert verdict.passed is passed


def test_only_the_topmost_trusted_header_counts() -> None:
    ours = "mx.example.com; dmarc=fail header.from=example.com"
    forged_below = "mx.example.com; dmarc=pass header.from=example.com"
    verdict = authentication_results([ours, forged_below], TRUSTED, "alice@example.com")
    assert not verdict.passed
    assert "no aligned pass" in verdict.detail


def test_nothing_is_trusted_without_configuration() -> None:
    header = "mx.example.com; dmarc=pass header.from=example.com"
    assert not authentication_results([header], [], "alice@example.com").passed
