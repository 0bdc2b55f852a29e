"""CRI log lines, and the kubelet's tail/since/timestamps/limitBytes on them."""

from __future__ import annotations

import io
from pathlib import Path

from kflow.cluster.node.logfiles import (
    ByteBudget,
    LogQuery,
    LogRecord,
    LogWriter,
    format_record,
    format_timestamp,
    parse_record,
    parse_timestamp,
    pump,
    read_records,
    render,
    select,
    tail_text,
)
from kflow.cluster.node.logserver import parse_query

T = 1_767_323_045_123_456_789  # 2026-01-02T03:04:05.123456789Z


def test_timestamps() -> None:
    assert format_timestamp(T) == "2026-01-02T03:04:05.123456789Z"
    assert format_timestamp(T - 789, trim=True) == "2026-01-02T03:04:05.123456Z"
    assert format_timestamp(1_767_323_045_000_000_000, trim=True) == "2026-01-02T03:04:05Z"
    assert parse_timestamp("2026-01-02T03:04:05.123456789Z") == T
    assert parse_timestamp("2026-01-02T03:04:05Z") == 1_767_323_045_000_000_000
    assert parse_timestamp("2026-01-02T04:04:05.5+01:00") == 1_767_323_045_500_000_000


def test_record_round_trip() -> None:
    record = LogRecord(T, "stderr", False, b"a line with  spaces")
    line = format_record(record)
    assert line == b"2026-01-02T03:04:05.123456789Z stderr F a line with  spaces\n"
    assert parse_record(line) == record
    assert parse_record(b"2026-01-02T03:04:05.123456789Z stdout F \n") == LogRecord(
        T, "stdout", False, b""
    )
    assert parse_record(b"garbage") is None
    assert parse_record(b"not-a-time stdout F x\n") is None


def test_render_partial_and_timestamps() -> None:
    assert render(LogRecord(T, "stdout", True, b"abc"), False) == b"abc"
    assert render(LogRecord(T, "stdout", False, b"abc"), False) == b"abc\n"
    assert render(LogRecord(T, "stdout", False, b"abc"), True) == (
        b"2026-01-02T03:04:05.123456789Z abc\n"
    )


def records(n: int) -> list[LogRecord]:
    return [LogRecord(T + i * 1_000_000_000, "stdout", False, f"l{i}".encode()) for i in range(n)]


def test_select_tail_and_since() -> None:
    data = records(10)
    assert select(data, LogQuery()) == data
    assert [r.content for r in select(data, LogQuery(tail_lines=3))] == [b"l7", b"l8", b"l9"]
    assert select(data, LogQuery(tail_lines=0)) == []
    since = LogQuery(since_ns=T + 8 * 1_000_000_000)
    assert [r.content for r in select(data, since)] == [b"l8", b"l9"]
    both = LogQuery(since_ns=T + 5 * 1_000_000_000, tail_lines=20)
    assert len(select(data, both)) == 5


def test_byte_budget() -> None:
    budget = ByteBudget(5)
    assert budget.take(b"abc\n") == b"abc\n"
    assert budget.take(b"defg\n") == b"d"
    assert budget.exhausted
    assert ByteBudget(None).take(b"x" * 100) == b"x" * 100


def test_writer_pump_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "c" / "0.log"
    writer = LogWriter(path)
    pump(io.BytesIO(b"one\ntwo\nno newline at end"), writer, "stdout")
    writer.write("stderr", b"err\n")
    writer.close()
    with path.open("rb") as f:
        got = list(read_records(f))
    assert [(r.stream, r.content, r.partial) for r in got] == [
        ("stdout", b"one", False),
        ("stdout", b"two", False),
        ("stdout", b"no newline at end", False),
        ("stderr", b"err", False),
    ]
    assert tail_text(path, 2, 2048) == "no newline at end\nerr\n"
    assert tail_text(path, 80, 4) == "err\n"
    assert tail_text(tmp_path / "missing.log", 80, 100) == ""


def test_long_lines_become_partial_records(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    writer = LogWriter(path)
    pump(io.BytesIO(b"x" * 20000 + b"\n"), writer, "stdout")
    writer.close()
    with path.open("rb") as f:
        got = list(read_records(f))
    assert [r.partial for r in got] == [True, False]
    assert b"".join(render(r, False) for r in got) == b"x" * 20000 + b"\n"


def test_parse_query() -> None:
    now = T
    query, follow, previous = parse_query(
        {"tailLines": ["5"], "follow": ["true"], "timestamps": ["1"], "limitBytes": ["10"]}, now
    )
    assert query == LogQuery(tail_lines=5, limit_bytes=10, since_ns=None, timestamps=True)
    assert follow and not previous
    query, _, previous = parse_query({"sinceSeconds": ["2"], "previous": ["true"]}, now)
    assert query.since_ns == now - 2_000_000_000 and previous
    query, _, _ = parse_query({"sinceTime": ["2026-01-02T03:04:05Z"]}, now)
    assert query.since_ns == 1_767_323_045_000_000_000
