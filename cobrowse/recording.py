"""Append-only, compressed recordings of a co-browse stream (filed onto the ticket).

File format (``tandem-cobrowse`` v1):

* The file is a concatenation of gzip members (RFC 1952 §2.2 allows this; every
  gzip reader, including ``gzip.open``/``zcat``, reads it as one stream).
* Decompressed, it is newline-delimited JSON. The first line is the header
  ``{"format": "tandem-cobrowse", "v": 1, "recorder": "rrweb@2..."}``; every other
  line is one rrweb event, exactly as relayed (after sanitisation).
* Appends add new members and never rewrite earlier bytes. Events are buffered and
  written in members of ``flush_bytes`` (or on :meth:`RecordingWriter.flush`), so a
  crash loses at most the unflushed buffer. A member torn by a crash is detected by
  the reader (``truncated``) and cut off when the writer reopens the file.

The header is the only version marker (like rrweb packer's ``MARK``); a reader
refuses any other ``format`` or ``v``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final, Self, cast

import orjson

from .exceptions import RecordingFormatError
from .types import Event, parse_recorder

__all__ = [
    "RECORDING_FORMAT",
    "RECORDING_VERSION",
    "AsyncRecordingWriter",
    "RecordingReader",
    "RecordingWriter",
    "encode_event",
    "encode_events",
    "make_header",
    "read_recording",
]

log = logging.getLogger("cobrowse.recording")

RECORDING_FORMAT: Final = "tandem-cobrowse"
RECORDING_VERSION: Final = 1
_READ_CHUNK: Final = 64 * 1024
_MAX_MEMBER_BYTES: Final = 256 * 1024 * 1024


def make_header(recorder: str) -> dict[str, Any]:
    """The header line for a new recording.

    Raises:
        ValueError: if ``recorder`` is not ``rrweb@2.x``.
    """
    recorder = parse_recorder(recorder)
    return {"format": RECORDING_FORMAT, "v": RECORDING_VERSION, "recorder": recorder}


def _check_header(obj: object) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise RecordingFormatError("header is not an object")
    if obj.get("format") != RECORDING_FORMAT:
        raise RecordingFormatError("unknown recording format")
    v = obj.get("v")
    if not isinstance(v, int) or isinstance(v, bool) or v != RECORDING_VERSION:
        raise RecordingFormatError("unsupported recording version")
    if not isinstance(obj.get("recorder"), str):
        raise RecordingFormatError("header lacks a recorder")
    return obj


_LINE_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""What ``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)`` builds on every call."""


def encode_event(obj: object) -> bytes:
    """An event as its recording line holds it, without the newline (UTF-8 JSON).

    orjson writes the same JSON values as ``json.dumps`` with ``_LINE_ENCODER``'s settings
    (compact, UTF-8, no ASCII escapes), ten times faster for a small event: every relayed
    co-browse event is encoded here. What it refuses (an integer past 64 bits, a lone
    surrogate) goes to the standard encoder, which writes the one and refuses the other
    (``UnicodeEncodeError``) as before."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return _LINE_ENCODER.encode(obj).encode()


def encode_events(events: Sequence[object]) -> bytes:
    """A batch as one JSON array: ``[`` + each ``encode_event`` joined by ``,`` + ``]``, the
    same bytes, in one call."""
    try:
        return orjson.dumps(events)
    except TypeError:
        return b"[" + b",".join(encode_event(event) for event in events) + b"]"


def _dumps_line(obj: object) -> bytes:
    return encode_event(obj) + b"\n"


class _Members:
    """Iterate complete gzip members of a file as decompressed bytes."""

    def __init__(self, f: BinaryIO, max_member_bytes: int = _MAX_MEMBER_BYTES) -> None:
        self._f = f
        self._max = max_member_bytes
        self.complete_end = 0
        """File offset just after the last complete member."""
        self.torn = False
        """The file ends inside a member (a crash mid-write)."""

    def __iter__(self) -> Iterator[bytes]:
        d = zlib.decompressobj(wbits=31)
        out: list[bytes] = []
        out_len = 0
        in_member = 0
        buf = b""
        while True:
            if not buf:
                buf = self._f.read(_READ_CHUNK)
                if not buf:
                    break
            try:
                chunk = d.decompress(buf, _READ_CHUNK * 4)
            except zlib.error:
                raise RecordingFormatError("corrupt compressed data") from None
            out.append(chunk)
            out_len += len(chunk)
            if out_len > self._max:
                raise RecordingFormatError("member decompresses beyond the cap")
            if d.eof:
                rest = d.unused_data
                in_member += len(buf) - len(rest)
                self.complete_end += in_member
                in_member = 0
                yield b"".join(out)
                out, out_len = [], 0
                buf = rest
                d = zlib.decompressobj(wbits=31)
            elif d.unconsumed_tail:
                in_member += len(buf) - len(d.unconsumed_tail)
                buf = d.unconsumed_tail
            else:
                in_member += len(buf)
                buf = b""
        if in_member or out_len:
            self.torn = True


class RecordingReader:
    """Read a recording: ``header`` then iterate its events.

    A torn final member (crash mid-append) is skipped and ``truncated`` set, unless
    ``strict`` is true, in which case it raises. Unknown format/version always raises.
    """

    def __init__(self, path: str | os.PathLike[str], *, strict: bool = False) -> None:
        self.path = Path(path)
        self.strict = strict
        self.truncated = False
        self.header: dict[str, Any] = {}
        with self.path.open("rb") as f:
            for line in self._lines(f):
                self.header = _check_header(self._parse(line))
                break
            else:
                raise RecordingFormatError("empty recording")

    @staticmethod
    def _parse(line: bytes) -> Any:
        try:
            return json.loads(line)
        except ValueError:
            raise RecordingFormatError("a line is not JSON") from None

    def _lines(self, f: BinaryIO) -> Iterator[bytes]:
        members = _Members(f)
        pending = b""
        for data in members:
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            yield from (ln for ln in lines if ln)
        if pending:
            raise RecordingFormatError("recording does not end with a newline")
        if members.torn:
            if self.strict:
                raise RecordingFormatError("recording is truncated")
            self.truncated = True

    def __iter__(self) -> Iterator[Event]:
        with self.path.open("rb") as f:
            first = True
            for line in self._lines(f):
                if first:
                    first = False
                    continue
                ev = self._parse(line)
                if not isinstance(ev, dict):
                    raise RecordingFormatError("an event line is not an object")
                yield ev


def read_recording(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Event]]:
    """Read a whole recording: ``(header, events)``. Small files and tests only."""
    reader = RecordingReader(path)
    return reader.header, list(reader)


class RecordingWriter:
    """Append-only writer. Blocking I/O: use :class:`AsyncRecordingWriter` in a loop.

    Opening an existing file validates its header (same format, version and
    recorder) and cuts off a torn final member left by a crash, then appends.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        recorder: str,
        *,
        flush_bytes: int = 256 * 1024,
        fsync: bool = False,
    ) -> None:
        self.path = Path(path)
        self.header = make_header(recorder)
        self.flush_bytes = flush_bytes
        self.fsync = fsync
        self._buf: list[bytes] = []
        self._buf_len = 0
        self.events_written = 0
        self._f = self._open()

    def _open(self) -> BinaryIO:
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open("rb") as rf:
                members = _Members(rf)
                header: dict[str, Any] | None = None
                for data in members:
                    if header is None:
                        first = data.split(b"\n", 1)[0]
                        try:
                            header = _check_header(json.loads(first))
                        except ValueError:
                            raise RecordingFormatError("header is not JSON") from None
                        # keep scanning to find the end of the last complete member
            if header is not None and header.get("recorder") != self.header["recorder"]:
                raise RecordingFormatError("recorder differs; start a new recording file")
            if members.torn:
                os.truncate(self.path, members.complete_end)
            if header is not None:
                return self.path.open("ab")
            os.truncate(self.path, 0)  # only a torn header: start over
        f = self.path.open("ab")
        self._write_member(f, _dumps_line(self.header))
        return f

    def _write_member(self, f: BinaryIO, data: bytes) -> None:
        f.write(gzip.compress(data, compresslevel=6, mtime=0))
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())

    @property
    def buffered_bytes(self) -> int:
        """Uncompressed bytes waiting for :meth:`flush`."""
        return self._buf_len

    def append(self, events: Sequence[Event | bytes]) -> None:
        """Buffer events (or their ``encode_event`` form); writes a member once
        ``flush_bytes`` are buffered."""
        for ev in events:
            line = ev + b"\n" if isinstance(ev, bytes) else _dumps_line(ev)
            self._buf.append(line)
            self._buf_len += len(line)
        self.events_written += len(events)
        if self._buf_len >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        """Write buffered events as one gzip member."""
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf, self._buf_len = [], 0
        self._write_member(self._f, data)

    def write_lines(self, data: bytes, events: int) -> None:
        """Write ``events`` encoded events, joined with their newlines (``data``), as one gzip
        member, after anything buffered. Nothing here holds the GIL for long: compressing and
        writing release it (see ``AsyncRecordingWriter.flush``)."""
        self.flush()
        self.events_written += events
        self._write_member(self._f, data)

    def close(self) -> None:
        """Flush and close."""
        if self._f.closed:
            return
        try:
            self.flush()
        finally:
            self._f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRecordingWriter:
    """Event-loop-friendly wrapper: buffers event objects in the loop and does JSON
    encoding, compression and file I/O in a worker thread (``asyncio.to_thread``).

    Writes are serialized by a lock, so members land in call order. Events must not
    be mutated after they are appended (they are encoded later, off the loop).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        recorder: str,
        *,
        flush_bytes: int = 256 * 1024,
        flush_interval: float = 2.0,
        fsync: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._args = (Path(path), recorder, fsync)
        self.flush_bytes = flush_bytes
        self.flush_interval = flush_interval
        self._clock = clock
        self._writer: RecordingWriter | None = None
        self._pending: list[Event | bytes] = []
        self._pending_bytes = 0
        self._last_flush = clock()
        self._lock = asyncio.Lock()
        self._flushing: set[asyncio.Task[None]] = set()
        """Flushes started by ``add_encoded``, not awaited by their caller."""

    async def open(self) -> None:
        """Create or reopen the file (validates the header off the loop)."""
        path, recorder, fsync = self._args
        async with self._lock:
            if self._writer is None:
                self._writer = await asyncio.to_thread(
                    RecordingWriter, path, recorder, flush_bytes=1 << 62, fsync=fsync
                )

    async def append(self, events: Sequence[Event], nbytes: int | None = None) -> None:
        """Queue events; flushes when ``flush_bytes`` or ``flush_interval`` is reached.

        Args:
            events: validated, sanitized events.
            nbytes: their encoded size if known (from validation), for buffering.
        """
        self._pending.extend(events)
        self._pending_bytes += nbytes if nbytes is not None else 512 * len(events)
        due = self._clock() - self._last_flush >= self.flush_interval
        if self._pending_bytes >= self.flush_bytes or due:
            await self.flush()

    def add_encoded(self, lines: Sequence[bytes]) -> None:
        """Queue events already encoded (``encode_event``) without waiting for anything: a
        flush that falls due runs in the background, after any earlier one (members still land
        in call order). For the live stream, whose relay must not wait on the file."""
        self._pending.extend(lines)
        self._pending_bytes += sum(len(line) + 1 for line in lines)
        due = self._clock() - self._last_flush >= self.flush_interval
        if self._pending_bytes >= self.flush_bytes or due:
            # Marked flushed now, so the batches arriving meanwhile do not each start one.
            self._last_flush = self._clock()
            task = asyncio.get_running_loop().create_task(self.flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("recording flush failed", exc_info=task.exception())

    async def flush(self) -> None:
        """Write everything queued so far as one member."""
        if self._writer is None:
            await self.open()
        async with self._lock:
            batch, self._pending, self._pending_bytes = self._pending, [], 0
            self._last_flush = self._clock()
            if not batch:
                return
            writer = self._writer
            assert writer is not None
            if all(type(line) is bytes for line in batch):
                # The lines joined here, in one C call: a worker thread running Python (a loop
                # over 2,000 lines) holds the GIL, and the loop waited for it on every system
                # call meanwhile (co-browse relay stalls of 5-13 ms every 2 s, at each flush).
                # Compressing and writing release the GIL.
                data = b"\n".join(cast(list[bytes], batch)) + b"\n"
                await asyncio.to_thread(writer.write_lines, data, len(batch))
                return

            def _write() -> None:
                writer.append(batch)
                writer.flush()

            await asyncio.to_thread(_write)

    async def aclose(self) -> None:
        """Flush and close the file."""
        while self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        await self.flush()
        async with self._lock:
            if self._writer is not None:
                await asyncio.to_thread(self._writer.close)
