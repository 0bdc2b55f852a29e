"""Detached processes, pid-reuse safety, group stop, free ports (real local processes)."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from kflow.cluster import processes


def test_start_logs_output_and_stop_ends_the_whole_group(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    # The leader spawns a child that ignores nothing; both must go.
    code = ("import subprocess, sys, time; print('hello', flush=True); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "time.sleep(60)")
    record = processes.start([sys.executable, "-c", code], log)
    assert record.start_ticks > 0
    deadline = time.monotonic() + 10
    while "hello" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "hello" in log.read_text()
    assert processes.alive(record)
    assert os.getpgid(record.pid) == record.pid
    assert processes.stop(record, grace=5)
    assert not processes.alive(record)
    assert not processes._group_alive(record.pid)


def test_sigterm_resistant_process_is_killed_after_grace(tmp_path: Path) -> None:
    code = ("import signal, time, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")
    log = tmp_path / "c.log"
    record = processes.start([sys.executable, "-c", code], log)
    deadline = time.monotonic() + 10
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    assert processes.stop(record, grace=0.5)
    assert time.monotonic() - started < 5


def test_a_reused_pid_is_not_taken_for_the_recorded_process() -> None:
    me = processes.ProcessRecord(pid=os.getpid(), start_ticks=1)
    assert not processes.alive(me)
    record = processes.ProcessRecord.from_json({"pid": os.getpid(), "start_ticks": 1})
    assert record == me


def test_free_ports_are_distinct_and_keep_a_free_preferred_port() -> None:
    ports = processes.free_ports(["a", "b", "c"])
    assert len(set(ports.values())) == 3
    again = processes.free_ports(["a", "b", "c"], prefer=ports)
    assert again == ports
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        moved = processes.free_ports(["a"], prefer={"a": taken})
    assert moved["a"] != taken


def test_pid_running_tells_live_from_gone(tmp_path: Path) -> None:
    record = processes.start([sys.executable, "-c", "import time; time.sleep(60)"],
                             tmp_path / "c.log")
    assert processes.pid_running(record.pid)
    assert processes.stop(record, grace=5)
    assert not processes.pid_running(record.pid)


def test_find_components_matches_marker_and_folder(tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    code = "import time; time.sleep(60)"
    ours = processes.start([sys.executable, "-c", code, f"{folder}/etcd"], tmp_path / "a.log")
    other = processes.start([sys.executable, "-c", code, f"{tmp_path}/else/x"],
                            tmp_path / "b.log")
    try:
        # Right after the fork the child still shows our argv: wait until it has exec'd.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
                code in Path(f"/proc/{p.pid}/cmdline").read_bytes().decode(errors="replace")
                for p in (ours, other)):
            time.sleep(0.01)
        found = processes.find_components(folder, ["python"])
        assert ours.pid in found
        assert other.pid not in found
        assert processes.find_components(folder, ["etcd-binary"]) == []
        assert processes.groups_of([ours.pid]) == [ours.pid]
    finally:
        assert processes.stop_all([ours, other], grace=5) == []
