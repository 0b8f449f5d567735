"""The one pipeline: a stored raw message becomes ticket changes, in one transaction.

Ingest edges (SMTP, `deliver`, `import`, IMAP) store raw mail through `maildesk.ingest.inbox`
and answer their peer once it has committed; then `process` parses, guards, threads, routes
and writes the ticket, its events and its notifications (outbox rows) together. A message
that fails anywhere in here is quarantined with the reason; its raw bytes are never lost.

    run.py      the loop: batches, a savepoint per message, quarantine on failure
    steps.py    the order, as data: STEPS over one frozen Context (context.py)
    open.py     a new ticket            append.py  mail on an existing ticket
    sender.py   who wrote it            watchers.py, inbound.py  what the mail adds
    outcome.py  what processing did       historic.py  when imported mail happened
"""

from maildesk.pipeline.outcome import NoSender, Outcome, Sender
from maildesk.pipeline.run import (
    IMPORT_BUDGET,
    WRITE_BUDGET,
    SaveRaw,
    import_many,
    process,
    process_many,
    process_pending,
    process_spooled,
)

__all__ = [
    "IMPORT_BUDGET",
    "WRITE_BUDGET",
    "NoSender",
    "Outcome",
    "SaveRaw",
    "Sender",
    "import_many",
    "process",
    "process_many",
    "process_pending",
    "process_spooled",
]
