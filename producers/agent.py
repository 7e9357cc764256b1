"""`tidelake agent`: follow a growing log like `tail -F` and publish each new line, like the Kinesis Agent.

Each poll reads the complete lines added since the checkpoint, parses them (access log, CSV or
JSONL), sends them in batches, waits for the broker's acknowledgement and only then moves the
checkpoint. So after a stop or crash the agent resumes where the broker's acknowledgements ended:
nothing is lost; lines are sent twice only if the process dies between an acknowledgement and the
checkpoint write (their `event_id`s are stable, so they can be deduplicated).

Rotation (the path now names a new file) is detected by file identity: the old file is read to
its end, then the new one from its start. A rotation that happened while the agent was stopped is
found by looking for the checkpointed file among the path's siblings (`access.log.1`, ...).
Truncation in place (copytruncate) restarts the file from its beginning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from core.errors import ConfigError
from core.settings import Settings
from producers.checkpoint import Checkpoint, FileId, Position
from producers.parsing import (
    REJECT_KEEP_BYTES,
    LineParser,
    dataset_name,
    detect_format,
    make_parser,
    parse_line,
    split_lines,
)
from producers.records import TOO_LARGE, Reject
from producers.sender import BatchSender
from producers.timestamps import TimeFormatter

log = logging.getLogger(__name__)

#: Most bytes read (and sent before one checkpoint) per poll; like the agent's maxBufferSizeBytes.
MAX_READ_BYTES = 4 * 1024 * 1024


@dataclass
class AgentCounts:
    sent: int = 0
    rejected: int = 0
    rotations: int = 0
    truncations: int = 0


class _OpenFile:
    def __init__(self, path: Path, handle: BinaryIO, file_id: FileId, offset: int, line_no: int) -> None:
        self.path = path
        self.handle = handle
        self.file_id = file_id
        self.offset = offset
        self.line_no = line_no
        self.parser: LineParser | None = None
        self.header_line = False


class Agent:
    """Follows one file path; `poll()` publishes what was added, `run()` polls until stopped."""

    def __init__(
        self,
        settings: Settings,
        path: Path,
        topic: str,
        checkpoint: Path,
        *,
        fmt: str = "auto",
        from_end: bool = False,
        poll_interval_s: float = 0.1,
        time_field: str | None = None,
        key_field: str | None = None,
    ) -> None:
        self.settings = settings
        self.path = Path(path)
        self.topic = topic
        self.checkpoint = Checkpoint(checkpoint)
        self.fmt = fmt
        self.from_end = from_end
        self.poll_interval_s = poll_interval_s
        self.time_field = time_field
        self.key_field = key_field
        self.source = dataset_name(self.path)
        self.counts = AgentCounts()
        self._current: _OpenFile | None = None
        self._draining: list[_OpenFile] = []  # rotated-away files still to finish, oldest first
        self._sender: BatchSender | None = None
        self._format_time = TimeFormatter()

    async def __aenter__(self) -> Agent:
        self._sender = BatchSender(self.settings, self.topic, client_id="tidelake-agent")
        await self._sender.start()
        self._resume()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for opened in [*self._draining, self._current]:
            if opened is not None:
                opened.handle.close()
        if self._sender is not None:
            await self._sender.stop()

    async def run(
        self, stop: asyncio.Event, on_poll: Callable[[AgentCounts], None] | None = None
    ) -> AgentCounts:
        while not stop.is_set():
            await self.poll()
            if on_poll:
                on_poll(self.counts)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_interval_s)
        return self.counts

    # -- where to start ---------------------------------------------------------------------

    def _open(self, path: Path, offset: int, line_no: int) -> _OpenFile | None:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - stays open while the file is followed
        except FileNotFoundError:
            return None
        except OSError as exc:
            msg = f"cannot read {path}: {exc.strerror}; check its permissions"
            raise ConfigError(msg) from exc
        file_id = FileId.of(os.fstat(handle.fileno()))
        handle.seek(offset)
        return _OpenFile(path, handle, file_id, offset, line_no)

    def _resume(self) -> None:
        position = self.checkpoint.load()
        if position is None:
            self._current = self._open(self.path, 0, 0)
            if self._current is not None and self.from_end:
                self._skip_to_end(self._current)
            return
        current = self._open(self.path, 0, 0)
        if current is not None and current.file_id == position.file_id:
            current.handle.seek(position.offset)
            current.offset, current.line_no = position.offset, position.line_no
            self._current = current
            return
        rotated = self._find_rotated(position.file_id)
        if rotated is not None:
            log.info("resuming %s, rotated away from %s while stopped", rotated, self.path)
            old = self._open(rotated, position.offset, position.line_no)
            if old is not None:
                self._draining.append(old)
                self.counts.rotations += 1
        else:
            log.warning(
                "the checkpointed file %s is gone; starting %s from its beginning", position.path, self.path
            )
        self._current = current

    def _find_rotated(self, file_id: FileId) -> Path | None:
        for sibling in sorted(self.path.parent.glob(self.path.name + "*")):
            try:
                if FileId.of(sibling.stat()) == file_id:
                    return sibling
            except OSError:
                continue
        return None

    def _skip_to_end(self, opened: _OpenFile) -> None:
        data = opened.handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        opened.offset += len(complete)
        opened.line_no += complete.count(b"\n")
        opened.handle.seek(opened.offset)

    # -- one poll -----------------------------------------------------------------------------

    async def poll(self) -> int:
        """Publish every complete line added since the last poll; return how many lines were handled."""
        handled = 0
        while self._draining:
            old = self._draining[0]
            while (count := await self._publish_new_lines(old)) > 0:
                handled += count
            old.handle.close()
            self._draining.pop(0)
        if self._current is None:
            self._current = self._open(self.path, 0, 0)
            if self._current is None:
                return handled
        self._check_truncated(self._current)
        while (count := await self._publish_new_lines(self._current)) > 0:
            handled += count
        handled += await self._check_rotated()
        return handled

    def _check_truncated(self, opened: _OpenFile) -> None:
        size = os.fstat(opened.handle.fileno()).st_size
        if size < opened.offset:
            log.warning(
                "%s was truncated (%d < %d bytes read); reading it again from the start",
                opened.path,
                size,
                opened.offset,
            )
            opened.handle.seek(0)
            opened.offset, opened.line_no = 0, 0
            opened.parser = None
            self.counts.truncations += 1

    async def _check_rotated(self) -> int:
        current = self._current
        if current is None:
            return 0
        try:
            now_id = FileId.of(self.path.stat())
        except FileNotFoundError:
            return 0  # mid-rotation: the new file is not there yet
        if now_id == current.file_id:
            return 0
        handled = 0
        while (count := await self._publish_new_lines(current)) > 0:  # the old file's last lines
            handled += count
        current.handle.close()
        self.counts.rotations += 1
        log.info("%s was rotated; following the new file", self.path)
        self._current = self._open(self.path, 0, 0)
        if self._current is not None:
            self._save(self._current)
            while (count := await self._publish_new_lines(self._current)) > 0:
                handled += count
        return handled

    def _parser_for(self, opened: _OpenFile, first_line: bytes) -> LineParser:
        if opened.parser is None:
            text = first_line.decode("utf-8", "replace").strip()
            fmt = detect_format(opened.path, text) if self.fmt == "auto" else self.fmt
            opened.parser = make_parser(
                fmt, self.source, header=text, time_field=self.time_field, key_field=self.key_field
            )
            opened.header_line = fmt == "csv"
        return opened.parser

    async def _publish_new_lines(self, opened: _OpenFile) -> int:
        data = opened.handle.read(MAX_READ_BYTES)
        cut = data.rfind(b"\n")
        if cut < 0:
            opened.handle.seek(opened.offset)  # a partial last line waits for its newline
            return 0
        complete = data[: cut + 1]
        opened.handle.seek(opened.offset + len(complete))
        lines = split_lines(complete)
        if opened.parser is None:
            if opened.line_no > 0:  # resumed mid-file: the header (CSV) is the file's first line
                with open(opened.path, "rb") as again:
                    self._parser_for(opened, again.readline())
            else:
                self._parser_for(opened, lines[0])
        parser = opened.parser
        sender = self._sender
        if sender is None or parser is None:
            msg = "the agent is not started; use `async with Agent(...)`"
            raise RuntimeError(msg)
        source_file = str(opened.path)
        max_bytes = self.settings.producer.max_record_bytes
        for raw in lines:
            opened.line_no += 1
            if opened.header_line and opened.line_no == 1:
                continue
            item = parse_line(parser, raw, opened.line_no, source_file, max_bytes)
            if isinstance(item, Reject):
                await sender.send_reject(item)
                continue
            key = item.key.encode() if item.key is not None else None
            value = orjson.dumps(item.payload(formatter=self._format_time))
            if not sender.fits(key, value):
                msg = f"event of {len(value):,} bytes is over the {max_bytes:,}-byte record limit"
                await sender.send_reject(
                    Reject(raw[:REJECT_KEEP_BYTES], item.line_no, TOO_LARGE, msg, source_file)
                )
                continue
            await sender.send(key, value)
        await sender.flush()  # acknowledged before the checkpoint moves
        opened.offset += len(complete)
        self.counts.sent, self.counts.rejected = sender.counts.sent, sender.counts.rejected
        self._save(opened)
        return len(lines)

    def _save(self, opened: _OpenFile) -> None:
        self.checkpoint.save(Position(str(opened.path), opened.file_id, opened.offset, opened.line_no))
