"""Container processes: one process group (and session) per container instance.

Owns: starting a container's argv with `start_new_session=True` at its CPU weight's nice
value (`policy.cpu_nice`), piping its stdout and stderr into its CRI log file, the
`<state-dir>/pgids/<pgid>` marker files (created at start, removed once the group is
reaped: the supervisor kills whatever is left there after the node exits), signalling
and reaping groups, and the memory watcher.

Memory limits: the cgroup v2 memory controller is not usable on this machine (cgroup
v1 only, no delegation), so limits are enforced by polling. Every ~100 ms the watcher
reads `/proc/<pid>/stat` of every process, sums the RSS of those whose session is a
watched container's session (start_new_session makes pid = pgid = sid, and children
keep the session even if they change process group), and SIGKILLs the whole session
when the sum exceeds the limit; the container then reports OOMKilled / 137. A fast
allocator can overshoot the limit for up to one polling interval.

Imports nothing from kflow outside `kflow.cluster.node`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kflow.cluster.node.logfiles import LogWriter, pump

log = logging.getLogger(__name__)
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class StartError(Exception):
    """The process could not be started (exec failed); message as a runtime shows it."""


def _mark(pgid_dir: Path, pgid: int) -> Path:
    marker = pgid_dir / str(pgid)
    marker.touch()
    return marker


class ContainerProcess:
    """A running (or finished) container instance."""

    def __init__(self, popen: subprocess.Popen[bytes], writer: LogWriter, marker: Path) -> None:
        self._popen = popen
        self._writer = writer
        self._marker = marker
        self.pid = popen.pid
        self._pumps: list[threading.Thread] = []
        self._reaped = False
        self.returncode: int | None = None

    def _start_waiter(self, on_exit: Callable[[], None]) -> None:
        """Call `on_exit` as soon as the main process exits (the worker polls then,
        instead of at its next 100 ms tick). ``waitid(WNOWAIT)`` leaves the exit status
        for `poll` to reap."""
        def wait() -> None:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            on_exit()

        threading.Thread(target=wait, daemon=True, name=f"exit-{self.pid}").start()

    def _start_pumps(self) -> None:
        for stream, source in (("stdout", self._popen.stdout), ("stderr", self._popen.stderr)):
            assert source is not None
            thread = threading.Thread(
                target=pump,
                args=(source, self._writer, stream),
                daemon=True,
                name=f"pump-{self.pid}-{stream}",
            )
            thread.start()
            self._pumps.append(thread)

    def poll(self) -> int | None:
        """The Popen returncode once the main process exited (the group is then reaped)."""
        if self.returncode is not None:
            return self.returncode
        code = self._popen.poll()
        if code is None:
            return None
        self._finish()
        self.returncode = code
        return code

    def signal(self, number: int) -> None:
        """Signal the whole group (session leader's group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, number)

    def wait(self, timeout: float) -> int | None:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.poll()

    def stop(self, grace: float) -> int:
        """SIGTERM the group, SIGKILL after `grace` seconds; return the returncode."""
        if self.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait(max(grace, 0.0)) is None:
                self.signal(signal.SIGKILL)
                self._popen.wait()
        code = self.poll()
        assert code is not None
        return code

    def _finish(self) -> None:
        """Like a container runtime: when the main process ends, the rest of it goes too."""
        if self._reaped:
            return
        self._reaped = True
        self.signal(signal.SIGKILL)
        for thread in self._pumps:
            thread.join(timeout=2)
        self._writer.close()
        with contextlib.suppress(FileNotFoundError):
            self._marker.unlink()


def start_process(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    log_path: Path,
    pgid_dir: Path,
    nice: int = 0,
    on_exit: Callable[[], None] | None = None,
) -> ContainerProcess:
    """Start argv in a new session at `nice` (the container's CPU weight, see
    `policy.cpu_nice`), output to `log_path`, `on_exit` called (on another thread) when
    it exits; raise StartError if exec fails."""
    writer = LogWriter(log_path)
    try:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except (OSError, ValueError) as exc:
        writer.close()
        raise StartError(f"failed to start container process {list(argv)!r}: {exc}") from exc
    if nice > 0:
        _lower_priority(popen.pid, nice)
    marker = _mark(pgid_dir, popen.pid)
    process = ContainerProcess(popen, writer, marker)
    process._start_pumps()
    if on_exit is not None:
        process._start_waiter(on_exit)
    return process


def _lower_priority(pid: int, nice: int) -> None:
    """Give the new session (pid = pgid = sid) the weight of `nice` against the
    processes outside it. The kernel's autogroup scheduling (on by default) puts each
    session in its own group, and a nice value counts only inside its group, so the
    session's autogroup gets the nice too; the group's nice is what weighs against the
    control plane. The process group's nice still orders the container's own processes
    (children inherit both; no preexec_fn: it is unsafe in a threaded process)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PGRP, pid, nice)
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as group:
        group.write(str(nice))


def session_rss(sessions: set[int], proc: Path = Path("/proc")) -> dict[int, int]:
    """Resident bytes summed per session id, for the given sessions."""
    totals = dict.fromkeys(sessions, 0)
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "stat"), "rb") as f:
                raw = f.read()
        except OSError:
            continue
        try:
            sid, rss_pages = parse_stat(raw)
        except (ValueError, IndexError):
            continue
        if sid in totals:
            totals[sid] += rss_pages * PAGE_SIZE
    return totals


def parse_stat(raw: bytes) -> tuple[int, int]:
    """(session id, rss pages) from /proc/<pid>/stat (the comm field may hold spaces)."""
    fields = raw[raw.rfind(b")") + 2 :].split()
    # after ") ": state(3) ppid(4) pgrp(5) session(6) ... rss(24); index = field - 3
    return int(fields[3]), int(fields[21])


@dataclass(frozen=True)
class Watch:
    limit: int
    on_exceeded: Callable[[int], None]  # called with the measured bytes, after SIGKILL


class MemoryWatcher:
    """One thread polling RSS for every container that has a memory limit."""

    def __init__(self, interval: float = 0.1) -> None:
        self._interval = interval
        self._watches: dict[int, Watch] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watcher", daemon=True)
        self._thread.start()

    def add(self, session: int, limit: int, on_exceeded: Callable[[int], None]) -> None:
        with self._lock:
            self._watches[session] = Watch(limit, on_exceeded)

    def remove(self, session: int) -> None:
        with self._lock:
            self._watches.pop(session, None)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                watches = dict(self._watches)
            if not watches:
                continue
            try:
                usage = session_rss(set(watches))
            except OSError:
                continue
            for session, used in usage.items():
                watch = watches[session]
                if used > watch.limit:
                    kill_session(session)
                    self.remove(session)
                    try:
                        watch.on_exceeded(used)
                    except Exception:
                        log.exception("memory watch callback failed")


def kill_session(session: int, proc: Path = Path("/proc")) -> None:
    """SIGKILL every process of a session (its group first)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session, signal.SIGKILL)
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "stat"), "rb") as f:
                sid, _ = parse_stat(f.read())
        except (OSError, ValueError, IndexError):
            continue
        if sid == session:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
