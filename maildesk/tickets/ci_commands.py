"""The commands about services and configuration items, parsed here: `#ci NAME` (link a
CI to the ticket), `#ci -NAME` (unlink it) and `#broadcast <text>` (tell the affected
services' subscribers). Which CIs exist is checked, and the links made, by
maildesk.tickets.cis; a broadcast is checked and sent by maildesk.tickets.broadcasts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maildesk.tickets.commands import Command, CommandContext

MAX_NAME = 255
MAX_BROADCAST = 4000  # characters of one #broadcast line


def parse_ci(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    """#ci NAME [-NAME ...]: names or aliases (hostnames, FQDNs, asset tags, IP addresses)."""
    from maildesk.tickets.commands import Command

    add: list[str] = []
    remove: list[str] = []
    for word in arg.replace(",", " ").split():
        target = remove if word.startswith("-") else add
        name = word.lstrip("+-")
        if not name or len(name) > MAX_NAME:
            raise ValueError(f"{word!r} is not a CI name")
        target.append(name)
    if not add and not remove:
        raise ValueError("needs a CI to link (NAME) or unlink (-NAME), like #ci mail01")
    return Command(
        name="ci", line=line, text=text, add=tuple(dict.fromkeys(add)), remove=tuple(remove)
    )


def parse_broadcast(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    """#broadcast <text>: the words the affected services' subscribers get. Several lines
    of it in one reply make one broadcast of several paragraphs."""
    from maildesk.tickets.commands import Command

    words = arg.strip()
    if not words:
        raise ValueError(
            "needs the text for the subscribers, like "
            "#broadcast Mail is down since 09:10; next update at 10:00"
        )
    if len(words) > MAX_BROADCAST:
        raise ValueError(f"a broadcast line is at most {MAX_BROADCAST} characters")
    return Command(name="broadcast", line=line, text=text, value=words)
