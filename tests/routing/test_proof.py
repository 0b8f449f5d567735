"""Agent proof: HMAC reply tokens and trusted Authentication-Results (maildesk.routing.proof)."""

from __future__ import annotations

import pytest

from maildesk.mail.address import plus_address
from maildesk.routing.proof import Token, TokenCodec, authentication_results

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
FROM = "alice@example.com"
# The border server's own trace line (Postfix writes "by <myhostname>", which is also the
# authserv-id OpenDKIM, OpenDMARC and rspamd use by default).
OURS = (
    "Received: from mail.example.net (mail.example.net [192.0.2.7]) by mx.example.com "
    "(Postfix) with ESMTPS id 4Xy9; Tue, 1 Dec 2026 20:00:00 +0000"
)
LMTP = (
    "Received: from mx.example.com by imap.example.com with LMTP id Zm9v; "
    "Tue, 1 Dec 2026 20:00:01 +0000"
)
PASS = "Authentication-Results: mx.example.com; dmarc=pass header.from=example.com"
FAIL = "Authentication-Results: mx.example.com; dmarc=fail header.from=example.com"
SENDER = ["From: Alice <alice@example.com>", "Subject: Re: [MD-1] Printer", "Message-ID: <a@b>"]


def block(*lines: str) -> list[tuple[str, str]]:
    """(lower-cased name, raw value) pairs, as ParsedMessage.raw_headers holds them."""
    out = []
    for line in lines:
        name, _, value = line.partition(":")
        out.append((name.strip().lower(), value.strip()))
    return out


def verdict(*lines: str) -> bool:
    return authentication_results(block(*lines), TRUSTED, FROM).passed


@pytest.mark.parametrize(
    ("header", "passed"),
    [
        ("mx.example.com; dmarc=pass header.from=example.com", True),
        ("mx.example.com; dkim=pass header.d=example.com header.s=sel", True),
        ("mx.example.com; dkim=pass header.d=mail.example.com", True),
        ("MX.Example.COM; dmarc=pass header.from=Example.com", True),
        ("mx.example.com;\tdkim=pass (2048-bit key) header.d=example.com", True),
        ("mx.example.com; spf=pass smtp.mailfrom=alice@example.com", False),  # SPF alone
        ("mx.example.com; dkim=pass header.d=evil.example.net", False),
        ("mx.example.com; dmarc=fail header.from=example.com", False),
        ("mx.example.com; spf=pass smtp.mailfrom=x@evil.example.net", False),
        ("attacker.example.net; dmarc=pass header.from=example.com", False),
        ("mx.example.com; none", False),
        ("not a header at all ;;; ===", False),
    ],
)
def test_authentication_results(header: str, passed: bool) -> None:
    assert verdict(OURS, f"Authentication-Results: {header}", *SENDER) is passed


@pytest.mark.parametrize(
    "lines",
    [
        # Postfix: milters (OpenDKIM, OpenDMARC, rspamd) insert theirs just below its Received.
        pytest.param([OURS, PASS, *SENDER], id="postfix-milter"),
        pytest.param(
            [
                OURS,
                "Authentication-Results: mx.example.com; dkim=pass header.d=example.com",
                FAIL.replace("dmarc=fail", "spf=fail"),
                *SENDER,
            ],
            id="postfix-two-milters",
        ),
        pytest.param(
            [
                OURS,
                "ARC-Seal: i=1; a=rsa-sha256; d=example.com; s=arc; cv=none; b=AAAA",
                "Received-SPF: pass (mx.example.com: domain of alice@example.com)",
                PASS,
                *SENDER,
            ],
            id="postfix-openarc-policyd-spf",
        ),
        # Exim: add_header = :at_start:${authresults {mx.example.com}} puts it above.
        pytest.param([PASS, OURS, *SENDER], id="exim-at-start"),
        # Fetched over IMAP: Dovecot's LMTP added its own Received (and more) on top.
        pytest.param(
            [
                "Return-Path: <alice@example.com>",
                "Delivered-To: support@example.com",
                LMTP,
                OURS,
                PASS,
                *SENDER,
            ],
            id="postfix-then-lmtp",
        ),
        pytest.param(
            ["Return-Path: <alice@example.com>", LMTP, PASS, OURS, *SENDER], id="exim-then-lmtp"
        ),
        # Another server's results on the way are passed over, not believed.
        pytest.param(
            [LMTP, "Authentication-Results: imap.example.com; dkim=none", OURS, PASS, *SENDER],
            id="other-authserv-above",
        ),
    ],
)
def test_trusted_header_where_the_border_server_writes_it(lines: list[str]) -> None:
    assert verdict(*lines)


@pytest.mark.parametrize(
    "lines",
    [
        # The topmost trusted header decides; a pass further down came with the message.
        pytest.param([OURS, FAIL, PASS, *SENDER], id="forged-below-ours"),
        pytest.param([FAIL, OURS, PASS, *SENDER], id="forged-below-exim-style"),
        # Below our Received, past the run of Authentication-Results: the sender's header.
        pytest.param([OURS, *SENDER, PASS], id="among-the-senders-headers"),
        pytest.param(
            [OURS, "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; b=AAAA", PASS],
            id="below-a-dkim-signature",
        ),
        pytest.param(
            [
                OURS,
                "Received: from x by evil.example.net; Tue, 1 Dec 2026 19:59:00 +0000",
                PASS,
                *SENDER,
            ],
            id="below-an-older-received",
        ),
        # No trace line of a trusted server at all: the mail never passed through it.
        pytest.param([PASS, *SENDER], id="no-received"),
        pytest.param(
            [
                PASS,
                "Received: from x by relay.example.org; Tue, 1 Dec 2026 20:00:00 +0000",
                *SENDER,
            ],
            id="no-trusted-received",
        ),
        pytest.param(
            [
                PASS,
                "Received: from mx.example.com (mx.example.com [192.0.2.1]) "
                "by relay.example.org; Tue, 1 Dec 2026 20:00:00 +0000",
                *SENDER,
            ],
            id="trusted-name-only-in-from-clause",
        ),
        # A trusted header that cannot be read is no proof: never look further down.
        pytest.param(
            [OURS, "Authentication-Results: mx.example.com; dmarc=pass (unclosed", PASS],
            id="unparseable-trusted",
        ),
        pytest.param([OURS, "Authentication-Results: ;;; ===", PASS], id="unreadable-id"),
        pytest.param([OURS, "Authentication-Results: (comment only)", PASS], id="no-id"),
    ],
)
def test_trusted_header_anywhere_else_proves_nothing(lines: list[str]) -> None:
    assert not verdict(*lines)


def test_the_value_is_read_as_sent_never_decoded() -> None:
    # The MTA copies the envelope sender into a comment; decoded, the encoded-word closes
    # the comment and a "dmarc=pass" appears ahead of the server's real dmarc=fail.
    raw = (
        "mx.example.com; spf=fail (sender =?utf-8?q?x=29=3B_dmarc=3Dpass_header.from="
        "3Dexample.com_=28?= not permitted) smtp.mailfrom=evil.example; "
        "dmarc=fail header.from=example.com"
    )
    assert not verdict(OURS, f"Authentication-Results: {raw}", *SENDER)


def test_only_the_topmost_trusted_header_counts() -> None:
    result = authentication_results(block(OURS, FAIL, PASS), TRUSTED, FROM)
    assert not result.passed
    assert "no aligned pass" in result.detail


def test_nothing_is_trusted_without_configuration() -> None:
    assert not authentication_results(block(OURS, PASS), [], FROM).passed
