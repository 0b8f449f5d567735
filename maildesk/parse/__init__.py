"""Parsing: raw bytes to a ParsedMessage (tree, headers, bodies, attachments, reply text).

Pure: no database, no network (ahead.py runs the same parse in a process of its own, for
bulk import).
"""

from maildesk.mail.message import ParsedAttachment, ParsedMessage, minted_message_id
from maildesk.parse.attachments import sanitise_filename
from maildesk.parse.bodies import html_to_text
from maildesk.parse.limits import (
    MAX_ADDRESS,
    MAX_ADDRESSES,
    MAX_CONTENT_ID,
    MAX_CONTENT_TYPE,
    MAX_DEPTH,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_MESSAGE_ID,
    MAX_NAME,
    MAX_PARTS,
    MAX_REFERENCES,
    MAX_SUBJECT,
)
from maildesk.parse.parser import Summary, looks_like_mail, parse_message, summarise

__all__ = [
    "MAX_ADDRESS",
    "MAX_ADDRESSES",
    "MAX_CONTENT_ID",
    "MAX_CONTENT_TYPE",
    "MAX_DEPTH",
    "MAX_HEADERS",
    "MAX_HEADER_VALUE",
    "MAX_MESSAGE_ID",
    "MAX_NAME",
    "MAX_PARTS",
    "MAX_REFERENCES",
    "MAX_SUBJECT",
    "ParsedAttachment",
    "ParsedMessage",
    "Summary",
    "html_to_text",
    "looks_like_mail",
    "minted_message_id",
    "parse_message",
    "sanitise_filename",
    "summarise",
]
