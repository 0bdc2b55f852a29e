"""Starting, recognising and stopping the cluster's background processes.

Owns: how a component runs detached from `kflow` (its own session and
process group, output to its log file), how a recorded process is told
apart from an unrelated one that reused its pid (the start time in
/proc/<pid>/stat), and the SIGTERM → grace → SIGKILL stop of a whole
process group. Also picks free loopback ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Popen objects of the processes this Python process started: kept so they are
# reaped (not left as zombies) and not garbage-collected while running.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessRecord:
    """A started process: its pid and the kernel's start time of that pid."""

    pid: int
    start_ticks: int

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "start_ticks": self.start_ticks}

    @classmethod
    def from_json(cls, data: Mapping[str, int]) -> ProcessRecord:
        return cls(pid=int(data["pid"]), start_ticks=int(data["start_ticks"]))


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a pid, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def pid_running(pid: int) -> bool:
    """True while some process (not a zombie) has this pid."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def alive(record: ProcessRecord) -> bool:
    """True while the recorded process runs (a zombie or a reused pid is not it)."""
    _reap(record.pid)
    stat = _stat(record.pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[1] == record.start_ticks


def _reap(pid: int) -> None:
    """Collect the exit status of a child of ours, so it doesn't linger as a zombie."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def start(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> ProcessRecord:
    """Run `argv` detached, in a new session, stdout and stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n"
                  .encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=dict(env) if env is not None else None, cwd=cwd,
        )
    _children[proc.pid] = proc
    stat = _stat(proc.pid)
    return ProcessRecord(pid=proc.pid, start_ticks=stat[1] if stat else 0)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_groups(pgids: Iterable[int], grace: float) -> list[int]:
    """SIGTERM process groups together, SIGKILL what is left after `grace` seconds.

    Returns the groups still alive at the end (none, normally).
    """
    left = set(pgids)
    for pgid in list(left):
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            _reap(pgid)
            left.discard(pgid)

    def wait(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while left and time.monotonic() < deadline:
            for pgid in list(left):
                _reap(pgid)
                if not _group_alive(pgid):
                    left.discard(pgid)
            time.sleep(0.05)

    wait(grace)
    for pgid in left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    wait(5.0)
    return sorted(left)


def kill_group(pgid: int, grace: float) -> bool:
    """SIGTERM a process group, SIGKILL it after `grace` seconds; True once it is gone."""
    return not kill_groups([pgid], grace)


def stop_all(records: Iterable[ProcessRecord], grace: float = 10.0) -> list[ProcessRecord]:
    """Stop recorded processes (and their groups) together; those that survived."""
    records = list(records)
    groups = [r.pid for r in records if alive(r) or _group_alive(r.pid)]
    for r in records:
        _reap(r.pid)
    left = set(kill_groups(groups, grace))
    return [r for r in records if r.pid in left]


def stop(record: ProcessRecord, grace: float = 10.0) -> bool:
    """Stop a recorded process and its group; True if nothing of it is left."""
    return not stop_all([record], grace)


def find_components(directory: Path, markers: Iterable[str]) -> list[int]:
    """Pids of processes whose argv names a file under `directory` and one of `markers`.

    The cluster's own processes all do (`--data-dir=<dir>/etcd`, `-dir=<dir>/s3`, ...):
    this finds them even when their records were lost.
    """
    prefix = f"{directory}/"
    wanted = tuple(markers)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(prefix in a for a in argv) and any(m in a for m in wanted for a in argv[:3]):
            found.append(int(entry.name))
    return found


def groups_of(pids: Iterable[int]) -> list[int]:
    """The process groups of `pids`, never our own."""
    groups = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgrp())
    return sorted(groups)


def free_ports(names: Iterable[str], prefer: Mapping[str, int] | None = None) -> dict[str, int]:
    """A distinct free 127.0.0.1 port per name, keeping a preferred one while it is free."""
    held: list[socket.socket] = []
    ports: dict[str, int] = {}
    try:
        for name in names:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            wanted = (prefer or {}).get(name, 0)
            try:
                sock.bind(("127.0.0.1", wanted))
            except OSError:
                sock.bind(("127.0.0.1", 0))
            held.append(sock)
            ports[name] = sock.getsockname()[1]
    finally:
        for sock in held:
            sock.close()
    return ports
