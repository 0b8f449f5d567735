"""`#ci NAME` (link a configuration item to the ticket) and `#ci -NAME` (unlink it):
parsed here; which CIs exist is checked, and the links made, by maildesk.tickets.cis."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maildesk.tickets.commands import Command, CommandContext

MAX_NAME = 255


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
