"""maildesk.config: load and validate maildesk.toml; every problem names its place."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from maildesk.config import (
    DATABASE_URL_ENV,
    Config,
    load_config,
    parse_duration,
    parse_hostport,
    parse_size,
)
from maildesk.errors import ConfigError, ConfigProblem

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """
[desk]
address = "support@example.com"

[[agents]]
email = "alice@example.com"
queues = ["it"]

[[queues]]
name = "it"
default = true

[[queues]]
name = "infra"
"""


@pytest.fixture(autouse=True)
def _no_database_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)


def write(tmp_path: Path, text: str, name: str = "maildesk.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    return info.value.problems


# --- the shipped config ------------------------------------------------------------------


def test_repository_config_loads() -> None:
    config = load_config(REPO / "maildesk.toml")
    assert isinstance(config, Config)
    assert config.desk.address == "support@example.com"
    assert config.desk.ref_prefix == "MD"
    assert config.desk.reopen_window == timedelta(days=14)
    assert (config.smtp.host, config.smtp.port) == ("127.0.0.1", 2525)
    assert config.smtp.max_message_size == 25_000_000
    assert config.smtp.accept == ("support@example.com", "helpdesk@example.com")
    assert config.default_queue.name == "it"
    assert {q.name for q in config.queues} == {"it", "infra"}
    assert config.rules[0].name == "outages are P1 for infra"
    assert config.outbound.transport == "maildir"
    assert config.outbound.path == REPO / "var" / "outbox"
    assert make_url(config.database.url).database == str(REPO / "var" / "maildesk.db")
    assert config.own_addresses == {"support@example.com", "helpdesk@example.com"}
    assert config.agent("BOB@example.com") is not None
    assert [a.email for a in config.agents_of("infra")] == ["bob@example.com"]


def test_minimal_config_fills_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.desk.timezone == "UTC"
    assert config.smtp.accept == ("support@example.com",)
    assert config.smtp.max_message_size == 25_000_000
    assert config.rules == ()
    assert config.path == tmp_path / "maildesk.toml"


# --- problems, each with its place -------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "place", "words"),
    [
        pytest.param("[dsek]\nname = 'x'\n", "[dsek]", ("unknown section",), id="section"),
        pytest.param(
            "[smtp]\ncolour = 'red'\n", "[smtp] key 'colour'", ("unknown key",), id="smtp-key"
        ),
        pytest.param(
            "[outbound]\nprot = 25\n", "[outbound] key 'prot'", ("unknown key",), id="out-key"
        ),
        pytest.param(
            "[[queues]]\nname = 'x'\ndefalt = true\n",
            "[[queues]] 'x' key 'defalt'",
            ("unknown key",),
            id="queue-key",
        ),
        pytest.param(
            "[outbound]\nport = '25'\n",
            "[outbound] key 'port'",
            ("whole number", "'25'"),
            id="type-int",
        ),
        pytest.param(
            "[outbound]\nport = true\n",
            "[outbound] key 'port'",
            ("whole number", "True"),
            id="type-bool-is-not-int",
        ),
        pytest.param(
            "[notify]\nacknowledge = 'yes'\n",
            "[notify] key 'acknowledge'",
            ("must be bool",),
            id="type-bool",
        ),
        pytest.param(
            "[smtp]\naccept = 'support@example.com'\n",
            "[smtp] key 'accept'",
            ("list of strings",),
            id="type-list",
        ),
        pytest.param(
            "[smtp]\naccept = ['not-an-address']\n",
            "[smtp] key 'accept'",
            ("email address", "not-an-address"),
            id="accept-address",
        ),
        pytest.param(
            "[smtp]\nmax_message_size = '25XB'\n",
            "[smtp] key 'max_message_size'",
            ("size", "'25XB'"),
            id="size",
        ),
        pytest.param(
            "[outbound]\nbackoff = 'soon'\n",
            "[outbound] key 'backoff'",
            ("duration", "'soon'"),
            id="duration",
        ),
        pytest.param(
            "[smtp]\nlisten = 'localhost'\n",
            "[smtp] key 'listen'",
            ("host:port",),
            id="hostport",
        ),
        pytest.param(
            "[database]\nurl = 'not a url'\n",
            "[database] key 'url'",
            ("database URL",),
            id="db-url",
        ),
        pytest.param(
            "[outbound]\ntransport = 'pigeon'\n",
            "[outbound] key 'transport'",
            ("'pigeon'",),
            id="transport",
        ),
        pytest.param(
            "[outbound]\ntransport = 'maildir'\n",
            "[outbound] key 'path'",
            ("required",),
            id="maildir-path",
        ),
        pytest.param(
            "[notify]\ntemplates = 'no-such-dir'\n",
            "[notify] key 'templates'",
            ("does not exist",),
            id="templates",
        ),
        pytest.param(
            "[[agents]]\nemail = 'bob@example.com'\nqueues = ['nope']\n",
            "[[agents]] 'bob@example.com' key 'queues'",
            ("unknown queue", "'nope'"),
            id="agent-queue",
        ),
        pytest.param(
            "[[queues]]\nname = 'it'\n",
            "[[queues]] 'it'",
            ("duplicate",),
            id="queue-dup",
        ),
        pytest.param(
            "[[queues]]\nname = 'other'\ndefault = true\n",
            "[[queues]]",
            ("more than one",),
            id="two-defaults",
        ),
        pytest.param(
            "[[rules]]\nname = 'bad regex'\nmatch = { subject = '(unclosed' }\n",
            "[[rules]] 'bad regex' key 'match.subject'",
            ("invalid regular expression",),
            id="rule-regex",
        ),
        pytest.param(
            "[[rules]]\nname = 'r'\nset = { queue = 'nope' }\n",
            "[[rules]] 'r' key 'set.queue'",
            ("unknown queue", "'nope'"),
            id="rule-queue",
        ),
        pytest.param(
            "[[rules]]\nname = 'r'\nset = { assignee = 'zed@example.com' }\n",
            "[[rules]] 'r' key 'set.assignee'",
            ("unknown assignee",),
            id="rule-agent",
        ),
        pytest.param(
            "[[rules]]\nname = 'r'\nset = { priority = 'urgent' }\n",
            "[[rules]] 'r' key 'set.priority'",
            ("unknown priority",),
            id="rule-priority",
        ),
        pytest.param(
            "[[rules]]\nname = 'r'\nset = { type = 'outage' }\n",
            "[[rules]] 'r' key 'set.type'",
            ("unknown type",),
            id="rule-type",
        ),
    ],
)
def test_each_problem_names_file_place_and_key(
    tmp_path: Path, extra: str, place: str, words: tuple[str, ...]
) -> None:
    path = write(tmp_path, MINIMAL + extra)
    found = problems(path)
    assert [p.place for p in found] == [place], found
    assert found[0].file == str(path)
    for word in words:
        assert word in found[0].message
    assert str(found[0]).startswith(f"{path}: {place}: ")


@pytest.mark.parametrize(
    ("desk", "place", "words"),
    [
        ("name = 5", "[desk] key 'name'", ("must be str",)),
        ("ref_prefix = '1X'", "[desk] key 'ref_prefix'", ("letters",)),
        ("timezone = 'Mars/Olympus'", "[desk] key 'timezone'", ("unknown timezone",)),
        ("reopen_window = 'forever'", "[desk] key 'reopen_window'", ("duration",)),
        ("adress = 'x@example.com'", "[desk] key 'adress'", ("unknown key",)),
    ],
)
def test_desk_problems(tmp_path: Path, desk: str, place: str, words: tuple[str, ...]) -> None:
    text = MINIMAL.replace("[desk]\n", f"[desk]\n{desk}\n")
    found = problems(write(tmp_path, text))
    assert [p.place for p in found] == [place]
    for word in words:
        assert word in found[0].message


def test_missing_desk_address_is_required(tmp_path: Path) -> None:
    found = problems(write(tmp_path, MINIMAL.replace('address = "support@example.com"', "")))
    assert [(p.place, p.message) for p in found] == [("[desk] key 'address'", "is required")]


def test_all_problems_are_collected(tmp_path: Path) -> None:
    extra = """
    [smtp]
    max_message_size = "lots"
    [bogus]
    [[rules]]
    name = "r"
    match = { subject = "[" }
    """
    found = problems(write(tmp_path, MINIMAL + textwrap.dedent(extra)))
    assert {p.place for p in found} == {
        "[bogus]",
        "[smtp] key 'max_message_size'",
        "[[rules]] 'r' key 'match.subject'",
    }


def test_missing_file(tmp_path: Path) -> None:
    found = problems(tmp_path / "absent.toml")
    assert [(p.place, p.message) for p in found] == [("file", "not found")]


def test_invalid_toml(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "[desk\naddress = 1\n"))
    assert [p.place for p in found] == ["file"]
    assert "not valid TOML" in found[0].message


@pytest.mark.parametrize("port", [0, 70000, -1])
def test_outbound_port_out_of_range_is_reported(tmp_path: Path, port: int) -> None:
    found = problems(write(tmp_path, MINIMAL + f"[outbound]\nport = {port}\n"))
    assert [p.place for p in found] == ["[outbound] key 'port'"]


@pytest.mark.parametrize("size", ['"0"', '"0MB"', "0"])
def test_zero_message_size_is_reported_not_replaced(tmp_path: Path, size: str) -> None:
    found = problems(write(tmp_path, MINIMAL + f"[smtp]\nmax_message_size = {size}\n"))
    assert [p.place for p in found] == ["[smtp] key 'max_message_size'"]


# --- value parsers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("25MB", 25_000_000),
        ("10MiB", 10 * 1024 * 1024),
        ("1.5KB", 1500),
        ("512KiB", 512 * 1024),
        ("2GB", 2_000_000_000),
        ("1GiB", 1024**3),
        ("25 mb", 25_000_000),
        ("100", 100),
        ("100B", 100),
        (1024, 1024),
    ],
)
def test_parse_size(value: object, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["25XB", "MB", "", "-5MB", "1e3", 0, -5, True, 1.5, None])
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(value)


@pytest.mark.parametrize("value", ["0", "0MB", "0KiB"])
def test_parse_size_rejects_zero_like_a_bare_zero(value: str) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("1.5h", timedelta(minutes=90)),
        ("14d", timedelta(days=14)),
        ("2w", timedelta(weeks=2)),
        (" 10 d ", timedelta(days=10)),
        (90, timedelta(seconds=90)),
        (0.25, timedelta(milliseconds=250)),
        (0, timedelta(0)),
    ],
)
def test_parse_duration(value: object, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", ["soon", "", "1y", "-1s", "10", "s", -3, True, None])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:2525", ("127.0.0.1", 2525)),
        ("mail.example.com:25", ("mail.example.com", 25)),
        ("[::1]:2525", ("::1", 2525)),
        (":2525", ("127.0.0.1", 2525)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_parse_hostport(value: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(value) == expected


@pytest.mark.parametrize(
    "value", ["localhost", "localhost:", "localhost:65536", "host:abc", "host:-1", 2525, None]
)
def test_parse_hostport_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_hostport(value)


# --- database URL ------------------------------------------------------------------------


def test_relative_sqlite_path_is_resolved_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "etc", MINIMAL + '[database]\nurl = "sqlite:///data/desk.db"\n')
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path)
    assert make_url(config.database.url).database == str(tmp_path / "etc" / "data" / "desk.db")


def test_relative_config_path_still_resolves_sqlite_absolutely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "etc", MINIMAL + '[database]\nurl = "sqlite:///desk.db"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config("etc/maildesk.toml")
    assert make_url(config.database.url).database == str(tmp_path / "etc" / "desk.db")


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("sqlite:////srv/maildesk/desk.db", "/srv/maildesk/desk.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://", None),
    ],
)
def test_absolute_and_memory_sqlite_urls_are_kept(
    tmp_path: Path, url: str, database: str | None
) -> None:
    config = load_config(write(tmp_path, MINIMAL + f'[database]\nurl = "{url}"\n'))
    assert make_url(config.database.url).database == database


def test_database_url_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+psycopg://desk:s3cret@db.example.com:5432/maildesk"
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    path = write(tmp_path, MINIMAL + '[database]\nurl = "sqlite:///file.db"\n')
    assert load_config(path).database.url == url


def test_database_url_environment_applies_without_a_database_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, "sqlite:////srv/other.db")
    config = load_config(write(tmp_path, MINIMAL))
    assert make_url(config.database.url).database == "/srv/other.db"


def test_default_database_is_next_to_the_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    url = make_url(config.database.url)
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(tmp_path / "var" / "maildesk.db")


# --- [[mailboxes]] -----------------------------------------------------------------------

MAILBOX = """
[[mailboxes]]
name = "support"
host = "imap.example.com"
username = "support@example.com"
password = "secret"
"""


def test_mailbox_defaults(tmp_path: Path) -> None:
    (box,) = load_config(write(tmp_path, MINIMAL + MAILBOX)).mailboxes
    assert (box.name, box.host, box.port, box.tls) == ("support", "imap.example.com", 993, "ssl")
    assert (box.folder, box.idle, box.poll_interval, box.after) == ("INBOX", True, 60.0, "seen")
    assert box.max_message_size == 25_000_000  # [smtp] max_message_size
    assert "secret" not in repr(box)


def test_mailbox_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "from-env")
    text = MINIMAL + MAILBOX.replace('password = "secret"', 'password_env = "TEST_IMAP_PASSWORD"')
    (box,) = load_config(write(tmp_path, text + 'tls = "starttls"\n')).mailboxes
    assert (box.password, box.port) == ("from-env", 143)


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("tls = 'tls'", "tls", ("'ssl', 'starttls' or 'none'",)),
        ("after = 'archive'", "after", ("'seen', 'move' or 'delete'",)),
        ("after = 'move'", "move_to", ("required",)),
        ("move_to = 'Done'", "move_to", ("only used with after = 'move'",)),
        ("after = 'move'\nmove_to = 'INBOX'", "move_to", ("must differ from folder",)),
        ("oversize_to = 'INBOX'", "oversize_to", ("must differ from folder",)),
        ("poll_interval = '500ms'", "poll_interval", ("at least 1s",)),
        ("poll_interval = 'often'", "poll_interval", ("duration",)),
        ("port = 0", "port", ("whole number",)),
        ("idle = 'yes'", "idle", ("must be bool",)),
        ("batch_size = 0", "batch_size", ("whole number",)),
        ("max_message_size = 'big'", "max_message_size", ("size",)),
        ("ca_file = 'no-such.pem'", "ca_file", ("does not exist",)),
        ("folderr = 'Support'", "folderr", ("unknown key",)),
        ("password_env = 'MAILDESK_TEST_UNSET_VARIABLE'", "password_env", ("unset",)),
    ],
)
def test_mailbox_problems_name_the_mailbox_and_key(
    tmp_path: Path, extra: str, key: str, words: tuple[str, ...]
) -> None:
    found = problems(write(tmp_path, MINIMAL + MAILBOX + extra + "\n"))
    assert [p.place for p in found] == [f"[[mailboxes]] 'support' key '{key}'"], found
    for word in words:
        assert word in found[0].message


def test_mailbox_entry_problems(tmp_path: Path) -> None:
    text = MINIMAL + MAILBOX + MAILBOX + "[[mailboxes]]\nname = 'has space'\nhost = 'h'\n"
    found = problems(write(tmp_path, text))
    assert [(p.place, p.message.split(" (")[0]) for p in found] == [
        ("[[mailboxes]] 'support'", "duplicate mailbox name"),
        (
            "[[mailboxes]] 'has space' key 'name'",
            "must be 1 to 27 letters, digits, '.', '_' or '-'",
        ),
        ("[[mailboxes]] 'has space'", "needs password or password_env"),
        ("[[mailboxes]] 'has space' key 'username'", "is required"),
    ]


def test_commented_mailbox_example_validates_when_uncommented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = (REPO / "maildesk.toml").read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("# [[mailboxes]]\n")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("# "))
    lines[start:end] = [line[2:] for line in lines[start:end]]
    monkeypatch.setenv("MAILDESK_IMAP_PASSWORD", "secret")
    (box,) = load_config(write(tmp_path, "".join(lines))).mailboxes
    assert (box.name, box.password, box.after) == ("support", "secret", "seen")


def test_addresses_in_config_are_spelt_as_the_mail_is_stored(tmp_path: Path) -> None:
    """An IDN written as its A-label (or in capitals) in the config is the same mailbox the
    parser stores in Unicode: agents, accepted addresses and VIPs all match it."""
    config = load_config(
        write(
            tmp_path,
            textwrap.dedent(
                """\
                [desk]
                address = "Support@XN--EXMPLE-CUA.SE"
                [smtp]
                accept = ["hjälp@xn--exmple-cua.se"]
                [routing]
                vips = ["VD@xn--exmple-cua.se", "@XN--EXMPLE-CUA.SE"]
                [[agents]]
                email = "Alice@xn--exmple-cua.se"
                queues = ["general"]
                [[queues]]
                name = "general"
                default = true
                """
            ),
        )
    )
    assert config.desk.address == "support@exämple.se"
    assert config.smtp.accept == ("hjälp@exämple.se",)
    assert config.vips == ("vd@exämple.se", "@exämple.se")
    assert config.agent("alice@exämple.se") is not None
    assert config.agent("ALICE@xn--exmple-cua.se") is not None
    assert "support@exämple.se" in config.own_addresses
