"""Log sinks: segments while running, readable before DONE, survive store hiccups."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kflow.store import Datastore, LocalObjectStore, StoreUnavailable, TaskKey
from tests.unit.store.doubles import FailingStore

KEY = TaskKey("default", "F", "r", "train", "4").attempt(1)


def wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_segments_on_interval_are_readable_while_running(tmp_path: Path) -> None:
    store = Datastore(LocalObjectStore(tmp_path))
    sink = store.attempt(KEY).log_sink("stdout", interval=0.05)
    sink.write("line 1\n")
    wait_for(lambda: store.read_log(KEY, "stdout") == b"line 1\n")
    sink.write(b"line 2\n")
    wait_for(lambda: store.read_log(KEY, "stdout") == b"line 1\nline 2\n")
    assert not store.is_done(KEY)  # readable before DONE
    # a crash: the sink is never closed, yet the log so far is stored
    keys = list(store.objects.list(store.layout.log_prefix(KEY, "stdout")))
    assert [k.rsplit("/", 1)[1] for k in keys] == ["000001", "000002"]
    sink.close()


def test_segment_when_buffer_is_full(tmp_path: Path) -> None:
    store = Datastore(LocalObjectStore(tmp_path))
    with store.attempt(KEY).log_sink("stderr", interval=60, max_buffer=1000) as sink:
        sink.write(b"x" * 1500)
        wait_for(lambda: sink.segments_written == 1)  # long before the 60 s tick
        sink.write(b"tail")
    assert store.read_log(KEY, "stderr") == b"x" * 1500 + b"tail"
    assert store.read_log(KEY, "stdout") == b""


def test_many_segments_concatenate_in_order(tmp_path: Path) -> None:
    store = Datastore(LocalObjectStore(tmp_path))
    expected = b""
    with store.attempt(KEY).log_sink("stdout", interval=60) as sink:
        for i in range(12):
            line = f"{i}\n".encode()
            sink.write(line)
            sink.flush()
            expected += line
    assert sink.segments_written == 12
    assert store.read_log(KEY, "stdout") == expected
    # a second sink for the same log (a re-exec) appends after the existing segments
    with store.attempt(KEY).log_sink("stdout") as again:
        again.write(b"more\n")
    assert store.read_log(KEY, "stdout") == expected + b"more\n"


def test_failed_upload_keeps_bytes_for_later(tmp_path: Path) -> None:
    failing = FailingStore(LocalObjectStore(tmp_path))
    store = Datastore(failing)
    sink = store.attempt(KEY).log_sink("stdout", interval=0.02)
    failing.failing = True
    sink.write(b"a\n")
    wait_for(lambda: sink.last_error is not None)
    sink.write(b"b\n")
    failing.failing = False
    wait_for(lambda: store.read_log(KEY, "stdout") == b"a\nb\n")
    failing.failing = True
    sink.write(b"lost?\n")
    with pytest.raises(StoreUnavailable):
        sink.close()


def test_closed_sink_refuses_writes(tmp_path: Path) -> None:
    sink = Datastore(LocalObjectStore(tmp_path)).attempt(KEY).log_sink("stdout")
    sink.close()
    sink.close()
    with pytest.raises(ValueError):
        sink.write(b"x")
