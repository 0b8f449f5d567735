"""Opaque-signed S/MIME (application/pkcs7-mime; smime-type=signed-data): the MIME entity
that the PKCS#7 SignedData carries, read with asn1crypto so that the message's text and
attachments can be shown. The signature is not verified. Encrypted (enveloped) data and
signed files that are not MIME (a signed PDF or invoice) are not opened.
"""

from __future__ import annotations

import re
from email.message import Message

from maildesk.parse.text import safe

PKCS7_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
# A MIME entity starts with a header field, or with the blank line of an empty header block.
_MIME_ENTITY = re.compile(rb"[\x21-\x39\x3b-\x7e]+:|\r?\n")


def signed_entity(part: Message) -> bytes | None:
    """The MIME entity inside an opaque-signed part, as bytes; None for any other part and
    for one whose PKCS#7 cannot be read."""
    ctype = safe(lambda: part.get_content_type(), "")
    smime_type = str(safe(lambda: part.get_param("smime-type"), None) or "").strip().lower()
    name = str(safe(lambda: part.get_filename() or part.get_param("name"), None) or "")
    if ctype in PKCS7_TYPES:
        if smime_type not in ("", "signed-data"):
            return None
    elif name.strip().lower() != "smime.p7m":
        return None
    der = safe(lambda: part.get_payload(decode=True), None)
    if not isinstance(der, bytes) or not der:
        return None
    entity = safe(lambda: _encapsulated(der), None)
    # a signed file that is not a MIME entity stays a file (it has no header block)
    return entity if isinstance(entity, bytes) and _MIME_ENTITY.match(entity) else None


def _encapsulated(der: bytes) -> bytes | None:
    """The data content of a DER (or BER) ContentInfo holding SignedData, if any."""
    from asn1crypto import cms  # loaded only for S/MIME mail

    info = cms.ContentInfo.load(der, strict=False)
    if info["content_type"].native != "signed_data":
        return None
    encap = info["content"]["encap_content_info"]
    if encap["content_type"].native != "data":
        return None
    content = encap["content"].native
    return content if isinstance(content, bytes) else None
