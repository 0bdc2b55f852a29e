"""Container log files in the CRI format, and reading them back like kubelet.

Each container instance (one start) writes `logs/<container>/<instance>.log` under
its pod's state dir; one record per line, as containerd writes them::

    2026-05-09T07:35:25.123456789Z stdout F the line without its newline
    2026-05-09T07:35:25.223456789Z stderr P a 16 KiB chunk of a longer line

`F` ends a line, `P` is a partial chunk continued by the next record. Owns the
format (pure functions), the writer used by the output pumps, and the query logic
behind `/containerLogs` (tailLines, sinceSeconds/sinceTime, timestamps, limitBytes).
Imports nothing from kflow outside `kflow.cluster.node`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

CHUNK = 16 * 1024


@dataclass(frozen=True)
class LogRecord:
    time_ns: int
    stream: str
    partial: bool
    content: bytes


@dataclass(frozen=True)
class LogQuery:
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_ns: int | None = None
    timestamps: bool = False


def format_timestamp(time_ns: int, trim: bool = False) -> str:
    """RFC 3339 with nanoseconds, UTC (`trim`: Go's RFC3339Nano drops trailing zeros)."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}"
    if trim:
        fraction = fraction.rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


def parse_timestamp(text: str) -> int:
    """RFC 3339 (`Z` or offset, optional fraction) → Unix nanoseconds."""
    text = text.strip().replace("z", "Z")
    main, fraction, zone = text[:19], "", text[19:]
    if zone.startswith("."):
        digits = len(zone) - len(zone[1:].lstrip("0123456789"))
        fraction, zone = zone[1:digits], zone[digits:]
    moment = datetime.fromisoformat(main + (zone if zone != "Z" else "+00:00"))
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    return int(moment.timestamp()) * 1_000_000_000 + nanos


def format_record(record: LogRecord) -> bytes:
    tag = "P" if record.partial else "F"
    head = f"{format_timestamp(record.time_ns)} {record.stream} {tag} ".encode()
    return head + record.content + b"\n"


def parse_record(line: bytes) -> LogRecord | None:
    """One line of a log file (without or with its newline); None if malformed."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    try:
        time_ns = parse_timestamp(parts[0].decode())
    except ValueError:
        return None
    content = parts[3] if len(parts) == 4 else b""
    return LogRecord(time_ns, parts[1].decode(), parts[2] == b"P", content)


def render(record: LogRecord, timestamps: bool) -> bytes:
    """What kubectl receives for one record."""
    prefix = (format_timestamp(record.time_ns, trim=True) + " ").encode() if timestamps else b""
    return prefix + record.content + (b"" if record.partial else b"\n")


def select(records: Iterable[LogRecord], query: LogQuery) -> list[LogRecord]:
    """Records after `since_ns`, then the last `tail_lines` of them."""
    kept: Iterable[LogRecord] = records
    if query.since_ns is not None:
        since = query.since_ns
        kept = (r for r in kept if r.time_ns >= since)
    if query.tail_lines is not None:
        if query.tail_lines <= 0:
            return []
        return list(deque(kept, maxlen=query.tail_lines))
    return list(kept)


def read_records(handle: IO[bytes]) -> Iterator[LogRecord]:
    for line in handle:
        if line.endswith(b"\n"):
            record = parse_record(line)
            if record is not None:
                yield record


class ByteBudget:
    """limitBytes: cut the output once the limit is reached (mid-line, like kubelet)."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    @property
    def exhausted(self) -> bool:
        return self.left is not None and self.left <= 0

    def take(self, data: bytes) -> bytes:
        if self.left is None:
            return data
        data = data[: max(self.left, 0)]
        self.left -= len(data)
        return data


def tail_text(path: Path, lines: int, max_bytes: int) -> str:
    """The container's last output lines (for FallbackToLogsOnError)."""
    try:
        with path.open("rb") as f:
            records = select(read_records(f), LogQuery(tail_lines=lines))
    except OSError:
        return ""
    data = b"".join(render(r, False) for r in records)
    return data[-max_bytes:].decode("utf-8", errors="replace")


class LogWriter:
    """Appends records to one file; shared by the stdout and stderr pumps."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("ab", buffering=0)
        self._lock = threading.Lock()

    def write(self, stream: str, chunk: bytes) -> None:
        partial = not chunk.endswith(b"\n")
        content = chunk if partial else chunk[:-1]
        record = LogRecord(time.time_ns(), stream, partial, content)
        with self._lock:
            self._file.write(format_record(record))

    def close(self) -> None:
        with self._lock:
            self._file.close()


def pump(source: IO[bytes], writer: LogWriter, stream: str) -> None:
    """Copy a pipe into the log until EOF; the last unterminated chunk counts as a line."""
    try:
        while True:
            chunk = source.readline(CHUNK)
            if not chunk:
                break
            if not chunk.endswith(b"\n") and len(chunk) < CHUNK:
                chunk += b"\n"  # EOF without a final newline: a full line, as containerd does
            writer.write(stream, chunk)
    except (OSError, ValueError):
        pass
    finally:
        source.close()


def instance_log(pod_dir: Path, container: str, instance: int) -> Path:
    return pod_dir / "logs" / container / f"{instance}.log"
