"""`#kb SLUG` (put an article into the relayed reply) and `#kb-draft [TITLE]` (keep the
reply's text as a draft article): parsed here, applied by maildesk.tickets.kb_reply."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maildesk.tickets.commands import Command, CommandContext

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


def parse_kb(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    """#kb SLUG [SLUG...]: which articles exist is checked where the KB is at hand."""
    from maildesk.tickets.commands import Command

    slugs = [s.lower() for s in arg.replace(",", " ").split()]
    if not slugs:
        raise ValueError("needs an article, like #kb vpn-does-not-connect")
    bad = [s for s in slugs if not _SLUG.match(s)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not an article slug (a-z, 0-9, '-')")
    return Command(name="kb", line=line, text=text, add=tuple(dict.fromkeys(slugs)))


def parse_kb_draft(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    """#kb-draft [TITLE]: the title defaults to the ticket's subject."""
    from maildesk.tickets.commands import Command

    return Command(name="kb-draft", line=line, text=text, value=arg.strip() or None)
