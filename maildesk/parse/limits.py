"""The limits parsing holds every message to: tree size, and what the store's columns hold."""

from __future__ import annotations

# Past these the message is quarantined instead of parsed: a 10,000-part multipart or a
# 100-level nesting costs seconds of CPU in the email package (and recursion past ~1,000
# levels), while real mail stays far below (a forward of a forward of a signed message
# with attachments is about 8 levels deep).
MAX_PARTS = 1000
MAX_DEPTH = 32
# What the store's columns and the notifications can hold.
# messages.message_id is VARCHAR(998) with a b-tree index (PostgreSQL: < 2,712 bytes a row)
MAX_MESSAGE_ID = 900  # bytes in UTF-8
MAX_ADDRESS = 320  # contacts.email, messages.from_addr
MAX_NAME = 256  # contacts.name, messages.from_name
MAX_SUBJECT = 1000
MAX_REFERENCES = 50  # the nearest ones; a References header can list thousands
MAX_ADDRESSES = 200  # per address header
MAX_HEADERS = 1000
MAX_HEADER_VALUE = 16_000
MAX_CONTENT_ID = 500
MAX_CONTENT_TYPE = 200
