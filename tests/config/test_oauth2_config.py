"""`auth = "oauth2"` for [[mailboxes]] and [outbound]: provider defaults, the client
secret's three sources, and problems that name the file, section, entry and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from maildesk.config import load_config
from tests.config.test_config import MINIMAL, REPO, problems, write

M365 = """
[[mailboxes]]
name = "m365"
host = "outlook.office365.com"
username = "support@example.com"
auth = "oauth2"
"""


def test_microsoft_client_credentials_fill_the_endpoint_and_scope(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_M365_SECRET", "from-env")
    table = (
        'oauth2 = { provider = "microsoft", tenant = "contoso.onmicrosoft.com", '
        'client_id = "app", client_secret_env = "TEST_M365_SECRET" }\n'
    )
    (box,) = load_config(write(tmp_path, MINIMAL + M365 + table)).mailboxes
    assert box.oauth2 is not None and box.password == ""
    assert box.oauth2.token_url == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert box.oauth2.grant == "client_credentials"
    assert box.oauth2.scope == "https://outlook.office365.com/.default"
    assert (box.oauth2.client_secret, box.oauth2.mechanism) == ("from-env", "xoauth2")
    assert "from-env" not in repr(box)


def test_google_refresh_token_and_outbound_secret_file(tmp_path: Path) -> None:
    (tmp_path / "refresh").write_text("1//token\n")
    (tmp_path / "secret").write_text("file-secret\n")
    text = (
        MINIMAL
        + M365.replace("m365", "gmail")
        + 'oauth2 = { provider = "google", client_id = "app", client_secret_file = "secret", '
        'refresh_token_file = "refresh", mechanism = "oauthbearer" }\n'
        + '[outbound]\ntransport = "smtp"\nhost = "smtp.gmail.com"\nport = 587\n'
        + 'starttls = true\nusername = "support@example.com"\nauth = "oauth2"\n'
        + '[outbound.oauth2]\ntoken_url = "https://idp.example.com/token"\nclient_id = "app"\n'
        + 'client_secret = "plain"\n'
    )
    config = load_config(write(tmp_path, text))
    (box,) = config.mailboxes
    assert box.oauth2 is not None and box.oauth2.grant == "refresh_token"
    assert box.oauth2.token_url == "https://oauth2.googleapis.com/token"
    assert box.oauth2.scope == "https://mail.google.com/"
    assert box.oauth2.refresh_token_file == tmp_path / "refresh"
    assert (box.oauth2.client_secret, box.oauth2.mechanism) == ("file-secret", "oauthbearer")
    out = config.outbound.oauth2
    assert out is not None and out.token_url == "https://idp.example.com/token"
    assert (out.grant, out.scope, out.client_secret) == ("client_credentials", "", "plain")


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ('{ client_id = "a", client_secret = "s" }', "token_url", "required with provider"),
        ('{ token_url = "ftp://x/t", client_id = "a", client_secret = "s" }', "token_url", "https"),
        (
            '{ token_url = "http://idp.example.com/t", client_id = "a", client_secret = "s" }',
            "token_url",
            "loopback only",
        ),
        ('{ provider = "microsoft", client_id = "a", client_secret = "s" }', "tenant", "required"),
        (
            '{ provider = "okta", token_url = "https://t/", client_id = "a", client_secret = "s" }',
            "provider",
            "'generic', 'microsoft', 'google'",
        ),
        ('{ token_url = "https://t/", client_secret = "s" }', "client_id", "required"),
        (
            '{ token_url = "https://t/", client_id = "a", client_secret_env = "MD_UNSET" }',
            "client_secret_env",
            "unset",
        ),
        (
            '{ token_url = "https://t/", client_id = "a", client_secret_file = "nope" }',
            "client_secret_file",
            "cannot read",
        ),
        (
            '{ token_url = "https://t/", client_id = "a", grant = "refresh_token" }',
            "refresh_token_file",
            "required with grant 'refresh_token'",
        ),
        (
            '{ token_url = "https://t/", client_id = "a", refresh_token_file = "nope" }',
            "refresh_token_file",
            "does not exist",
        ),
        (
            '{ provider = "google", client_id = "a", client_secret = "s" }',
            "grant",
            "use grant = 'refresh_token'",
        ),
        (
            '{ token_url = "https://t/", client_id = "a", client_secret = "s", mechanism = "p" }',
            "mechanism",
            "'xoauth2', 'oauthbearer'",
        ),
        (
            '{ token_url = "https://t/", client_id = "a", client_secret = "s", scopes = "x" }',
            "scopes",
            "unknown key",
        ),
    ],
)
def test_oauth2_problems_name_the_mailbox_and_key(
    tmp_path: Path, table: str, key: str, words: str
) -> None:
    found = problems(write(tmp_path, MINIMAL + M365 + f"oauth2 = {table}\n"))
    assert [p.place for p in found] == [f"[[mailboxes]] 'm365' oauth2 key '{key}'"], found
    assert words in found[0].message


@pytest.mark.parametrize(
    ("extra", "place", "words"),
    [
        ("", "[[mailboxes]] 'm365' key 'oauth2'", "required with auth = 'oauth2'"),
        (
            'password = "x"\noauth2 = { token_url = "https://t/", client_id = "a", '
            'client_secret = "s" }',
            "[[mailboxes]] 'm365' key 'password'",
            "not used with auth",
        ),
        (
            'oauth2 = { token_url = "https://t/", client_id = "a" }',
            "[[mailboxes]] 'm365' oauth2",
            "needs client_secret",
        ),
        ('oauth2 = "yes"', "[[mailboxes]] 'm365' key 'oauth2'", "must be a table"),
    ],
)
def test_auth_oauth2_needs_its_table_and_no_password(
    tmp_path: Path, extra: str, place: str, words: str
) -> None:
    found = problems(write(tmp_path, MINIMAL + M365 + extra + "\n"))
    assert [p.place for p in found] == [place], found
    assert words in found[0].message


def test_auth_must_be_known_and_oauth2_needs_it(tmp_path: Path) -> None:
    box = M365.replace('auth = "oauth2"', 'auth = "kerberos"\npassword = "x"')
    outbound = '[outbound]\nusername = "u"\npassword = "p"\noauth2 = { client_id = "a" }\n'
    found = problems(write(tmp_path, MINIMAL + box + outbound))
    assert [(p.place, p.message.split(",")[0]) for p in found] == [
        ("[outbound] key 'oauth2'", "is only used with auth = 'oauth2' (auth = 'password')"),
        ("[[mailboxes]] 'm365' key 'auth'", "must be 'password' or 'oauth2'"),
    ]


def test_outbound_oauth2_needs_a_username(tmp_path: Path) -> None:
    outbound = (
        '[outbound]\nauth = "oauth2"\n'
        'oauth2 = { token_url = "https://t/", client_id = "a", client_secret = "s" }\n'
    )
    found = problems(write(tmp_path, MINIMAL + outbound))
    assert [(p.place, p.message) for p in found] == [
        ("[outbound] key 'username'", "is required with auth = 'oauth2'")
    ]


def test_commented_oauth2_mailbox_example_validates_when_uncommented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = (REPO / "maildesk.toml").read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("# [[mailboxes]]                    # Microsoft 365 with OAuth2\n")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("# "))
    lines[start:end] = [line[2:] for line in lines[start:end]]
    monkeypatch.setenv("MAILDESK_M365_SECRET", "secret")
    (box,) = load_config(write(tmp_path, "".join(lines))).mailboxes
    assert box.oauth2 is not None and box.oauth2.client_secret == "secret"
    assert box.host == "outlook.office365.com"
