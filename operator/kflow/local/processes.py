"""`ProcessExecutor`: task attempts as ``python -m kflow.runner`` subprocesses.

Owns: starting one runner process per attempt (the operator's pod, minus the
pod: same arguments, see `kflow.local.executor.runner_argv`, the run's store through
its environment — ``KFLOW_STORE_DIR`` for a local run, S3 for a hybrid one — the
result JSON through ``KFLOW_TERMINATION_MESSAGE_PATH``), their output, their end, and
stopping them. What it sees becomes `ObservedAttempt`s through
`kflow.local.observe`.

Process model, chosen to leave nothing behind:

* every runner starts in a session (and process group) of its own, so the terminal's
  Ctrl-C reaches only the local loop, which then stops the tasks itself; stopping is
  SIGTERM to the whole group (the runner turns it into `TaskTerminated`, records the
  attempt and exits 143), SIGKILL to the group after `stop_grace` seconds;
* when a runner exits, whatever it left running in its group is killed at once, as a
  container's processes end with it;
* a ``@timeout`` step is killed at ``timeout + deadline_grace`` seconds (the runner's
  own SIGALRM normally ends it first, as in a pod with ``activeDeadlineSeconds``).

Each process has a watcher thread (waits for the exit, then reports it) and a reader
thread (its stdout and stderr, echoed line by line with a ``[step/task]`` prefix, as
Metaflow's local runtime does). Reports wake `wait` at once: no polling interval
between a task's end and the next plan.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kflow.api_types import ENV_TASK_CREATED_AT, ENV_TASK_READY_AT
from kflow.local.executor import RunLaunch, runner_argv
from kflow.local.observe import ProcessExit, observe_exit, observe_running
from kflow.planning.model import ObservedAttempt, StartTask, TaskId
from kflow.planning.run import format_time_ms

__all__ = ["Echo", "ProcessExecutor", "child_environment", "store_dir_env"]

Echo = Callable[[str, str], None]
"""Receives each output line of a task: ``(stream "stdout"|"stderr", prefixed line)``."""

RESERVED_ENV = frozenset({"KFLOW_USER", "KFLOW_STORE_DIR", "KFLOW_CODE_CACHE",
                          "KFLOW_TERMINATION_MESSAGE_PATH", ENV_TASK_READY_AT,
                          ENV_TASK_CREATED_AT})
RESERVED_PREFIX = "KFLOW_S3_"
_READ_CHUNK = 64 * 1024
_DRAIN_SECONDS = 2.0


def store_dir_env(store_dir: Path) -> dict[str, str]:
    """The store settings of a local run's tasks: its local store directory."""
    return {"KFLOW_STORE_DIR": str(store_dir)}


def child_environment(base: Mapping[str, str], store_env: Mapping[str, str],
                      user: str | None, step_env: Mapping[str, str]) -> dict[str, str]:
    """A runner's environment (pure): `base` without any store settings of its own
    (a stray S3 variable or prefix would move the data), the step's ``@environment``
    (kflow's reserved names excepted, as in a pod), then `store_env`: the run's store
    (`store_dir_env` for a local run; a hybrid run's S3 settings)."""
    env = {k: v for k, v in base.items()
           if k not in RESERVED_ENV and not k.startswith(RESERVED_PREFIX)}
    env.update({str(k): str(v) for k, v in step_env.items()
                if k not in RESERVED_ENV and not str(k).startswith(RESERVED_PREFIX)})
    env.update(store_env)
    if user:
        env["KFLOW_USER"] = user
    return env


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Attempt:
    """One runner process and what is known of it (guarded by the executor's lock)."""

    task: TaskId
    attempt: int
    created_at: datetime
    ready_at: datetime | None
    timeout_seconds: int | None
    result_path: Path
    popen: subprocess.Popen[bytes] | None = None
    deadline: float | None = None          # time.monotonic() when it is killed
    stop_reason: str | None = None
    kill_at: float | None = None           # stopped: SIGKILL the group then
    deadline_hit: bool = False
    exited: ProcessExit | None = None
    observed: ObservedAttempt | None = None
    reader: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.exited is None


class ProcessExecutor:
    """The `kflow.local.executor.Executor` of local runs (see the module docstring)."""

    def __init__(self, launch: RunLaunch, store_env: Mapping[str, str], work_dir: Path, *,
                 echo: Echo | None = None, python: str = sys.executable,
                 environ: Mapping[str, str] | None = None, stop_grace: float = 10.0,
                 deadline_grace: float = 30.0) -> None:
        self._launch = launch
        self._store_env = dict(store_env)
        self._work_dir = work_dir
        self._echo = echo
        self._python = python
        self._base_env = dict(os.environ if environ is None else environ)
        self._stop_grace = stop_grace
        self._deadline_grace = deadline_grace
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._dirty = False
        self._attempts: dict[tuple[TaskId, int], _Attempt] = {}
        self._watchers: list[threading.Thread] = []

    # -- starting ---------------------------------------------------------------------

    def start(self, start: StartTask) -> None:
        key = (start.task, start.attempt)
        with self._lock:
            if key in self._attempts:
                return
        step = self._launch.step(start.task.step)
        created = _now()
        name = f"{start.task.step}.{start.task.task}.{start.attempt}.json"
        record = _Attempt(start.task, start.attempt, created, start.ready_at,
                          step.timeout_seconds, self._work_dir / name)
        env = child_environment(self._base_env, self._store_env, self._launch.user,
                                step.environment)
        env["KFLOW_TERMINATION_MESSAGE_PATH"] = str(record.result_path)
        env[ENV_TASK_CREATED_AT] = format_time_ms(created)
        if start.ready_at is not None:
            env[ENV_TASK_READY_AT] = format_time_ms(start.ready_at)
        argv = [self._python, "-m", "kflow.runner", *runner_argv(self._launch, start)]
        try:
            popen = subprocess.Popen(argv, env=env, cwd=self._launch.code_dir,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            with self._lock:
                self._attempts[key] = record
                self._finish(record, ProcessExit(start.task, start.attempt, None,
                                                 spawn_error=str(exc), created_at=created,
                                                 finished_at=_now(),
                                                 ready_at=start.ready_at))
            return
        record.popen = popen
        if step.timeout_seconds:
            record.deadline = time.monotonic() + step.timeout_seconds + self._deadline_grace
        prefix = f"[{start.task.step}/{start.task.task}" + (
            f" attempt {start.attempt}]" if start.attempt else "]")
        record.reader = threading.Thread(target=self._read, args=(popen, prefix), daemon=True,
                                         name=f"kflow-out-{popen.pid}")
        watcher = threading.Thread(target=self._watch, args=(record,), daemon=True,
                                   name=f"kflow-wait-{popen.pid}")
        with self._lock:
            self._attempts[key] = record
            self._watchers.append(watcher)
        record.reader.start()
        watcher.start()

    # -- the threads ------------------------------------------------------------------

    def _read(self, popen: subprocess.Popen[bytes], prefix: str) -> None:
        """Echo the process's output line by line until both pipes are closed."""
        streams = {popen.stdout: "stdout", popen.stderr: "stderr"}
        pending = {"stdout": b"", "stderr": b""}
        with selectors.DefaultSelector() as selector:
            for pipe in streams:
                if pipe is not None:
                    selector.register(pipe, selectors.EVENT_READ)
            while selector.get_map():
                for key, _ in selector.select():
                    stream = streams[key.fileobj]  # type: ignore[index]
                    data = os.read(key.fd, _READ_CHUNK)
                    if not data:
                        selector.unregister(key.fileobj)
                        continue
                    lines = (pending[stream] + data).split(b"\n")
                    pending[stream] = lines.pop()
                    for line in lines:
                        self._emit(stream, prefix, line)
        for stream, rest in pending.items():
            if rest:
                self._emit(stream, prefix, rest)
        for pipe in streams:
            if pipe is not None:
                pipe.close()

    def _emit(self, stream: str, prefix: str, line: bytes) -> None:
        if self._echo is not None:
            self._echo(stream, f"{prefix} {line.decode('utf-8', errors='replace')}")

    def _watch(self, record: _Attempt) -> None:
        """Wait for the runner's exit, end what it left in its group, report it."""
        assert record.popen is not None
        returncode = record.popen.wait()
        finished = _now()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.popen.pid, signal.SIGKILL)   # its leftovers, as a container's
        if record.reader is not None:
            record.reader.join(_DRAIN_SECONDS)             # its last output before its end
        try:
            text: str | None = record.result_path.read_text(encoding="utf-8")
        except OSError:
            text = None
        with self._lock:
            self._finish(record, ProcessExit(
                record.task, record.attempt, returncode, result_text=text,
                stop_reason=record.stop_reason, deadline=record.deadline_hit,
                created_at=record.created_at, finished_at=finished,
                ready_at=record.ready_at, timeout_seconds=record.timeout_seconds))

    def _finish(self, record: _Attempt, exited: ProcessExit) -> None:
        """Record the end (the lock held) and wake `wait`."""
        record.exited = exited
        record.observed = observe_exit(exited)
        self._dirty = True
        self._changed.notify_all()

    # -- stopping ---------------------------------------------------------------------

    def _signal(self, record: _Attempt, sig: signal.Signals) -> None:
        if record.popen is not None and record.exited is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.popen.pid, sig)

    def stop(self, task: TaskId, attempt: int, reason: str) -> None:
        with self._lock:
            record = self._attempts.get((task, attempt))
            if record is None or not record.running or record.stop_reason is not None:
                return
            record.stop_reason = reason
            record.kill_at = time.monotonic() + self._stop_grace
            self._signal(record, signal.SIGTERM)

    def _tick(self) -> float | None:
        """Kill what is past its deadline or its stop grace (the lock held); seconds to
        the next such moment, None when there is none."""
        now = time.monotonic()
        upcoming: list[float] = []
        for record in self._attempts.values():
            if not record.running:
                continue
            if record.kill_at is not None:
                if now >= record.kill_at:
                    self._signal(record, signal.SIGKILL)
                    record.kill_at = None
                else:
                    upcoming.append(record.kill_at)
            if record.deadline is not None and record.stop_reason is None:
                if now >= record.deadline:
                    record.deadline_hit = True
                    record.deadline = None
                    self._signal(record, signal.SIGKILL)
                else:
                    upcoming.append(record.deadline)
        return max(min(upcoming) - now, 0.0) if upcoming else None

    # -- observing --------------------------------------------------------------------

    def observe(self) -> list[ObservedAttempt]:
        with self._lock:
            self._tick()
            return [record.observed if record.observed is not None else observe_running(
                record.task, record.attempt, record.created_at, record.ready_at,
                stopping=record.stop_reason is not None)
                for record in self._attempts.values()]

    def wait(self, timeout: float | None) -> None:
        with self._lock:
            end = None if timeout is None else time.monotonic() + timeout
            while not self._dirty:
                timer = self._tick()
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    break
                step = min((t for t in (timer, left) if t is not None), default=None)
                self._changed.wait(step)
            self._dirty = False

    def wake(self) -> None:
        with self._lock:
            self._dirty = True
            self._changed.notify_all()

    def active(self) -> int:
        with self._lock:
            return sum(record.running for record in self._attempts.values())

    def close(self, grace: float) -> None:
        with self._lock:
            running = [r for r in self._attempts.values() if r.running]
            for record in running:
                if record.stop_reason is None:
                    record.stop_reason = "Closed"
                self._signal(record, signal.SIGTERM)
            end = time.monotonic() + grace
            while any(r.running for r in running):
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            for record in running:
                self._signal(record, signal.SIGKILL)
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher.join()
