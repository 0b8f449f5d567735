"""Parsing as data, here or ahead in a second process (bulk import on a machine with two
cores or more: the importing process stores while the next messages are being parsed).

`parse_timed` is what every caller runs: parse_message, its time, and for mail that
cannot be parsed the reason it is quarantined with. `ParseAhead` runs it in
`python -m maildesk.parse.ahead`, a process that imports the parser alone (no database, no
configuration): raw messages go to it over a pipe, length-prefixed, and their results come
back pickled, in order, with the new text of what may be a reply worked out there too. At
most `ahead` messages are in flight, so memory stays bounded whatever the mailbox's size.
If that process cannot start or dies, the rest is parsed in the calling process: nothing is
lost or parsed twice into the store, only the overlap goes.

The pickles come from this package's own code in a process this one started; nothing
received from outside is unpickled.
"""

from __future__ import annotations

import logging
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Generator, Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import IO, Any

from maildesk.errors import MessageTooComplex, NotMail
from maildesk.mail.message import ParsedMessage
from maildesk.parse.parser import parse_message
from maildesk.parse.reply import new_text

log = logging.getLogger(__name__)

AHEAD = 32  # messages in flight to the parsing process
_FRAME = struct.Struct(">Q")
_END = object()  # the feeder's last word on the queue


@dataclass(frozen=True)
class Parsed:
    """A raw message parsed: the message, or why it is quarantined (`trace`: the
    traceback of an unexpected error, a bug to see)."""

    msg: ParsedMessage | None
    reason: str | None = None
    trace: str | None = None
    seconds: float = 0.0
    new_text: str | None = None  # of a reply, if worked out here (maildesk.parse.reply)


def parse_timed(raw: bytes, *, reply_text: bool = False) -> Parsed:
    """Parse; with `reply_text`, a message that may be a reply (it answers a Message-ID
    or its subject carries a tag) gets the new text its author wrote worked out too."""
    began = time.monotonic()
    try:
        msg = parse_message(raw)
        text = new_text(msg.body_text, msg.body_html) if reply_text and _reply(msg) else None
        return Parsed(msg, seconds=time.monotonic() - began, new_text=text)
    except NotMail as exc:
        reason, trace = f"not an email message: {exc}", None
    except MessageTooComplex as exc:
        reason, trace = str(exc), None
    except Exception as exc:  # parsing is defensive; anything left is a bug to see
        reason, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
    return Parsed(None, reason, trace, time.monotonic() - began)


class ParseAhead:
    """A parsing process for one run over many messages; use it as a context manager."""

    def __init__(self, ahead: int = AHEAD) -> None:
        self._slots = threading.Semaphore(ahead)
        self._sent: queue.Queue[Any] = queue.Queue()
        self._failed: BaseException | None = None  # reading the messages failed
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,  # its warnings go where this process's stderr goes
            )
        except OSError as exc:
            log.warning("parsing in this process: the parsing process did not start: %s", exc)

    def __enter__(self) -> ParseAhead:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def parsed(self, raws: Iterable[bytes]) -> Generator[tuple[bytes, Parsed], None, None]:
        """Each raw message with its parse, in order (reading `raws` goes on in a thread
        of its own; an error reading them is raised here, after what was read before)."""
        feeder = threading.Thread(target=self._feed, args=(raws,), name="md-parse-feed")
        feeder.start()
        try:
            while (raw := self._sent.get()) is not _END:
                self._slots.release()
                yield raw, self._answer(raw)
        finally:
            self._stop.set()
            self._slots.release()  # a feeder waiting for a slot sees the stop
            if feeder.is_alive() and self._proc is not None:
                self._proc.kill()  # left early: a feeder blocked writing to it goes on
            feeder.join()
        if self._failed is not None:
            raise self._failed

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            _close(pipe)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _feed(self, raws: Iterable[bytes]) -> None:
        try:
            for raw in raws:
                self._slots.acquire()
                if self._stop.is_set():
                    return
                self._sent.put(raw)
                self._send(raw)
        except BaseException as exc:
            self._failed = exc
        finally:
            self._sent.put(_END)
            if self._proc is not None:
                _close(self._proc.stdin)

    def _send(self, raw: bytes) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.closed:
            return
        try:
            proc.stdin.write(_FRAME.pack(len(raw)))
            proc.stdin.write(raw)
            proc.stdin.flush()
        except (OSError, ValueError):  # it died: the reader notices and parses here
            _close(proc.stdin)

    def _answer(self, raw: bytes) -> Parsed:
        proc = self._proc
        if proc is not None and proc.stdout is not None and not proc.stdout.closed:
            try:
                answer = _read_frame(proc.stdout)
                if answer is not None:
                    parsed: Parsed = pickle.loads(answer)
                    return parsed
            except (OSError, ValueError, pickle.UnpicklingError, EOFError):
                pass
            code = proc.poll()
            log.warning(
                "the parsing process stopped (exit code %s): parsing the rest in this process",
                code,
            )
            _close(proc.stdout)
        return parse_timed(raw)


def _reply(msg: ParsedMessage) -> bool:
    return bool(msg.in_reply_to or msg.references or "[" in msg.subject)


def _read_frame(stream: IO[bytes]) -> bytes | None:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    body = stream.read(size)
    return body if len(body) == size else None


def _close(pipe: IO[bytes] | None) -> None:
    if pipe is not None:
        with suppress(OSError):
            pipe.close()


def main() -> None:
    """The parsing process: frames of raw mail on stdin, pickled Parsed on stdout."""
    logging.basicConfig(level=logging.WARNING, format="maildesk parser: %(message)s")
    for noisy in ("mailparser", "tnefparse"):  # as the maildesk command sets them
        logging.getLogger(noisy).setLevel(logging.ERROR)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while (raw := _read_frame(inp)) is not None:
        parsed = parse_timed(raw, reply_text=True)
        answer = pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_FRAME.pack(len(answer)))
        out.write(answer)
        out.flush()


if __name__ == "__main__":
    # Run as the module maildesk.parse.ahead, not as __main__: what it pickles must name
    # the classes the importing process knows.
    from maildesk.parse import ahead

    ahead.main()
