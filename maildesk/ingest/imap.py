"""IMAP ingestion with imapclient (the only module that imports it).

Exactly once: per mailbox a checkpoint (UIDVALIDITY, last UID) lives in the store and is
advanced in the same transaction that stores a message's raw bytes, so a crash either
leaves both undone (the message is fetched again) or both done (it is not). Messages are
fetched with BODY.PEEK[] so the server does not mark them \\Seen before they are safe;
the after-ingest action (\\Seen, move, delete) runs after the commit, and is re-applied on
the next pass to stored messages still in the folder, so a crash in between loses nothing
and duplicates nothing. A new UIDVALIDITY rescans the folder: Message-ID dedupe in the
pipeline keeps that from opening tickets twice.

A mailbox with `auth = "oauth2"` logs in with an access token (XOAUTH2 or OAUTHBEARER); a
refused token is replaced by a fresh one once. The server checks a token only at login,
but Microsoft 365 may end a session once its token expires: so the watcher leaves IDLE
shortly before its token runs out and logs in again with a new one.
"""

from __future__ import annotations

import logging
import math
import random
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from maildesk.config import MailboxConfig
from maildesk.errors import MaildeskError
from maildesk.ingest import inbox
from maildesk.ingest.inbox import Incoming, Storage
from maildesk.ingest.lease import MailboxLease
from maildesk.mail.oauth2 import AccessToken, TokenError, tokens_for
from maildesk.metrics import Metrics

log = logging.getLogger(__name__)

IDLE_RENEW = 25 * 60.0  # seconds; servers may drop IDLE after 29 minutes (RFC 2177)
MAX_BACKOFF = 300.0
# Sessions logged in with an OAuth2 token, and when (time.monotonic) to log in again.
_session_ends: weakref.WeakKeyDictionary[IMAPClient, float] = weakref.WeakKeyDictionary()


class MailboxError(MaildeskError):
    """The mailbox cannot be read (connection, login, folder); the message says which."""


@dataclass
class PollReport:
    mailbox: str
    stored: int = 0
    skipped_oversize: list[int] = field(default_factory=list)
    rescanned: bool = False
    stored_ids: list[int] = field(default_factory=list)


@contextmanager
def connect(box: MailboxConfig, timeout: float = 30.0) -> Iterator[IMAPClient]:
    """A logged-in client with the folder selected; errors become MailboxError."""
    where = f"mailbox {box.name!r} ({box.username}@{box.host}:{box.port})"
    try:
        context = ssl.create_default_context() if box.tls != "none" else None
        client = IMAPClient(
            box.host, port=box.port, ssl=box.tls == "ssl", ssl_context=context, timeout=timeout
        )
    except (OSError, IMAPClientError) as exc:
        raise MailboxError(f"{where}: cannot connect: {exc}") from exc
    try:
        if box.tls == "starttls":
            client.starttls(context)
        _login(client, box)
        client.select_folder(box.folder)
    except LoginError as exc:
        _close(client)
        raise MailboxError(f"{where}: login refused: {_text(exc)}") from exc
    except TokenError as exc:
        _close(client)
        raise MailboxError(f"{where}: no OAuth2 token: {exc}") from exc
    except (OSError, IMAPClientError) as exc:
        _close(client)
        raise MailboxError(f"{where}: {type(exc).__name__}: {_text(exc)}") from exc
    try:
        yield client
    finally:
        _close(client)


def _login(client: IMAPClient, box: MailboxConfig) -> None:
    """LOGIN with the password, or AUTHENTICATE with an OAuth2 token: the cached one, and
    once more with a fresh one when the server refuses it (revoked, expired early)."""
    if box.oauth2 is None:
        client.login(box.username, box.password)
        return
    tokens = tokens_for(box.oauth2)
    token = tokens.token()
    try:
        _token_login(client, box, token)
    except LoginError:
        tokens.refused(token)
        token = tokens.token()
        _token_login(client, box, token)
    _session_ends[client] = token.renew_at


def _token_login(client: IMAPClient, box: MailboxConfig, token: AccessToken) -> None:
    assert box.oauth2 is not None
    if box.oauth2.mechanism == "oauthbearer":
        client.oauthbearer_login(box.username, token.value)
    else:
        client.oauth2_login(box.username, token.value)


def _session_left(client: IMAPClient) -> float:
    """Seconds until the session's token is due for renewal (inf: logged in by password)."""
    ends = _session_ends.get(client)
    return math.inf if ends is None else ends - time.monotonic()


def poll_once(storage: Storage, box: MailboxConfig, client: IMAPClient | None = None) -> PollReport:
    """One pass over the folder: store every new message, then apply the after-action."""
    if client is None:
        with connect(box) as fresh:
            return poll_once(storage, box, fresh)
    try:
        return _poll(storage, box, client)
    except (OSError, IMAPClientError) as exc:
        raise MailboxError(f"mailbox {box.name!r}: {type(exc).__name__}: {_text(exc)}") from exc


def _poll(storage: Storage, box: MailboxConfig, client: IMAPClient) -> PollReport:
    report = PollReport(box.name)
    status = client.folder_status(box.folder, [b"UIDVALIDITY"])
    uidvalidity = int(status[b"UIDVALIDITY"])
    mark = inbox.resume(storage, box.name, uidvalidity)
    if mark.changed_from is not None:
        report.rescanned = True
        log.warning(
            "mailbox %s: UIDVALIDITY changed (%s -> %s); rescanning, duplicates are "
            "recognised by Message-ID",
            box.name,
            mark.changed_from,
            uidvalidity,
        )
    last_uid = mark.last_uid
    new_uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
    for start in range(0, len(new_uids), box.batch_size):
        chunk = new_uids[start : start + box.batch_size]
        wanted = _within_size(box, client, chunk, report)
        bodies = client.fetch(wanted, [b"BODY.PEEK[]"]) if wanted else {}
        for uid in chunk:
            raw = bodies.get(uid, {}).get(b"BODY[]") if uid in wanted else None
            item = None if raw is None else Incoming(bytes(raw), f"imap:{box.name}", None, _to(box))
            raw_id = inbox.store_fetched(storage, box.name, uidvalidity, uid, item)
            if raw_id is not None:
                report.stored_ids.append(raw_id)
                report.stored += 1
    if report.skipped_oversize and box.oversize_to:
        _move(client, report.skipped_oversize, box.oversize_to)
    _after_ingest(box, client, max(new_uids, default=last_uid), report.skipped_oversize)
    if report.stored:
        log.info("mailbox %s: stored %d new message(s)", box.name, report.stored)
    return report


def _within_size(
    box: MailboxConfig, client: IMAPClient, chunk: list[int], report: PollReport
) -> list[int]:
    """The UIDs of chunk within max_message_size; the others go into the report."""
    sizes = client.fetch(chunk, [b"RFC822.SIZE"])
    wanted = []
    for uid in chunk:
        size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
        if size > box.max_message_size:
            report.skipped_oversize.append(uid)
            log.warning(
                "mailbox %s: UID %s is %s bytes, over max_message_size %s: skipped, %s",
                box.name,
                uid,
                size,
                box.max_message_size,
                f"moved to {box.oversize_to}" if box.oversize_to else "left in the folder",
            )
        else:
            wanted.append(uid)
    return wanted


def _to(box: MailboxConfig) -> tuple[str, ...]:
    """The envelope recipient of mail read from box: its login, when that is an address."""
    return (box.username,) if "@" in box.username else ()


def _after_ingest(box: MailboxConfig, client: IMAPClient, upto: int, skipped: list[int]) -> None:
    """Apply the after-action to every stored message still in the folder (idempotent)."""
    if upto <= 0:
        return
    criteria = ["UID", f"1:{upto}"]
    if box.after == "seen":
        criteria.append("UNSEEN")
    done = [u for u in client.search(criteria) if u <= upto and u not in set(skipped)]
    if not done:
        return
    if box.after == "seen":
        client.add_flags(done, [b"\\Seen"])
    elif box.after == "move":
        assert box.move_to is not None
        _move(client, done, box.move_to)
    else:
        client.delete_messages(done)
        client.expunge()


def _move(client: IMAPClient, uids: list[int], folder: str) -> None:
    if not client.folder_exists(folder):
        client.create_folder(folder)
    client.move(uids, folder)


def watch(
    storage: Storage,
    box: MailboxConfig,
    stop: threading.Event,
    on_stored: Callable[[], None],
    metrics: Metrics | None = None,
    *,
    lease_ttl: timedelta = timedelta(seconds=60),
) -> None:
    """Run in a thread until stop: poll, then IDLE (or sleep) for new mail; reconnect with
    capped, jittered backoff, logging once per change of state, not once per retry.

    Several daemons: the mailbox is read only while this daemon holds its lease
    (ingest/lease.py); without it the watcher stands by and asks again."""
    metrics = metrics or Metrics()
    lease = MailboxLease(storage, box.name, lease_ttl)
    try:
        _watch(storage, box, stop, on_stored, metrics, lease)
    finally:
        lease.release()


def _watch(
    storage: Storage,
    box: MailboxConfig,
    stop: threading.Event,
    on_stored: Callable[[], None],
    metrics: Metrics,
    lease: MailboxLease,
) -> None:
    failures = 0
    last_error: str | None = None
    while not stop.is_set():
        if not lease.take():
            stop.wait(lease.standby_wait)
            continue
        try:
            with connect(box) as client:
                if last_error is not None:
                    log.info("mailbox %s: connected again", box.name)
                failures, last_error = 0, None
                _serve_connection(storage, box, client, stop, on_stored, metrics, lease)
        except Exception as exc:  # any failure: reconnect, never let the thread die
            metrics.imap_failed(box.name)
            failures += 1
            text = str(exc) if isinstance(exc, MailboxError) else f"mailbox {box.name!r}: {exc!r}"
            if text != last_error:
                log.error("%s; retrying with backoff", text)
                last_error = text
            delay = min(MAX_BACKOFF, 2.0 ** min(failures, 10)) * random.uniform(0.5, 1.0)
            lease.wait(stop, delay)


def _serve_connection(
    storage: Storage,
    box: MailboxConfig,
    client: IMAPClient,
    stop: threading.Event,
    on_stored: Callable[[], None],
    metrics: Metrics,
    lease: MailboxLease,
) -> None:
    idle = box.idle and b"IDLE" in client.capabilities()
    while not stop.is_set() and lease.held():
        if _session_left(client) <= 0:
            log.info("mailbox %s: OAuth2 token due for renewal; logging in again", box.name)
            return
        report = poll_once(storage, box, client)
        metrics.imap_polled(box.name)
        if report.stored:
            metrics.accepted("imap", report.stored)
            on_stored()
        if not idle:
            lease.wait(stop, min(box.poll_interval, max(_session_left(client), 0.0)))
            continue
        # New mail reported by NOOP, or between the last command and the start of IDLE
        # (imaplib keeps such untagged EXISTS aside), means: poll again before idling.
        _, responses = client.noop()
        if any(isinstance(r, tuple) and r[1:2] == (b"EXISTS",) for r in responses):
            continue
        try:
            client.idle()
            pending = getattr(getattr(client, "_imap", None), "untagged_responses", {})
            if pending.pop("EXISTS", None):
                continue
            waited = 0.0
            # Short checks so a stop request (or the lease lost) is seen within a second;
            # renew before the server's 29-minute IDLE limit (and before an OAuth2 token
            # expires); poll anyway every poll_interval.
            limit = min(IDLE_RENEW, box.poll_interval, _session_left(client))
            while not stop.is_set() and waited < limit:
                if client.idle_check(timeout=min(1.0, max(limit - waited, 0.01))) or (
                    not lease.held()
                ):
                    break
                waited += 1
        finally:
            client.idle_done()


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # closing a broken connection: nothing left to do
        with suppress(Exception):
            client.shutdown()


def _text(exc: BaseException) -> str:
    args = exc.args[0] if exc.args else exc
    return args.decode("utf-8", "replace") if isinstance(args, bytes) else str(args)
