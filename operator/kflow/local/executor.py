"""The executor seam: how the local loop starts, stops and observes task attempts.

Owns: `RunLaunch` (what every task of one run is started with: code, store
namespace, flow, run id, parameters, tags, origin; and per step its environment and
timeout), `runner_argv` (pure: the runner's command line for one `StartTask`, the
same contract as the operator's pods, see `kflow.runner`), and the `Executor`
protocol.

An executor runs attempts somewhere and reports them as the planner's
`ObservedAttempt`s; the loop (`kflow.local.loop`) never knows where. The local mode
uses `kflow.local.processes.ProcessExecutor` (runner subprocesses). A hybrid mode can
implement the same protocol by routing each `StartTask` by its step: some to a pod
executor over the cluster (building pods with `kflow_operator.podspec` and observing
them with `kflow_operator.observe`), the rest to a `ProcessExecutor`, merging their
`observe()` lists and waking on either's events. Attempts are keyed by
``(TaskId, attempt)`` in every executor, as pods are named by them: starting the same
attempt twice is a no-op.

Pure apart from nothing: no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kflow.planning.model import ObservedAttempt, StartTask, TaskId

__all__ = ["Executor", "RunLaunch", "StepLaunch", "runner_argv", "step_launches"]


@dataclass(frozen=True)
class StepLaunch:
    """Per-step settings the executor applies (from the Flow spec's step entry)."""

    environment: Mapping[str, str] = field(default_factory=dict)   # @environment
    timeout_seconds: int | None = None                             # @timeout


@dataclass(frozen=True)
class RunLaunch:
    """What every task of one run is started with."""

    flow_file: str              # relative to code_dir
    code_dir: Path              # the flow's folder: the runner imports the code from here
    code_sha256: str            # the code package's digest (recorded with every task)
    namespace: str
    flow: str                   # the flow class's name
    run_id: str
    start_step: str = "start"
    parameters: Mapping[str, str] = field(default_factory=dict)    # start step only
    tags: Sequence[str] = ()
    origin_run_id: str | None = None
    user: str | None = None
    steps: Mapping[str, StepLaunch] = field(default_factory=dict)

    def step(self, name: str) -> StepLaunch:
        """The step's settings (defaults for a step the spec does not describe)."""
        return self.steps.get(name) or StepLaunch()


def step_launches(spec: Mapping[str, Any]) -> dict[str, StepLaunch]:
    """Each step's settings from a Flow spec (its ``steps[]`` entries)."""
    return {str(entry["name"]): StepLaunch(
        environment={str(k): str(v) for k, v in (entry.get("environment") or {}).items()},
        timeout_seconds=entry.get("timeoutSeconds")) for entry in spec.get("steps") or []}


def runner_argv(launch: RunLaunch, start: StartTask) -> list[str]:
    """The arguments after ``python -m kflow.runner`` for one attempt (the operator's
    pod arguments, with ``--code-dir`` for ``--code-url``)."""
    argv = [
        "--flow-file", launch.flow_file,
        "--code-sha256", launch.code_sha256,
        "--code-dir", str(launch.code_dir),
        "--namespace", launch.namespace,
        "--flow", launch.flow,
        "--run-id", launch.run_id,
        "--step", start.task.step,
        "--task", start.task.task,
        "--attempt", str(start.attempt),
        "--max-user-code-retries", str(start.last_user_attempt),
    ]
    if start.task.step == launch.start_step:
        for name, value in launch.parameters.items():
            argv += ["--param", f"{name}={value}"]
    for tag in launch.tags:
        argv += ["--tag", tag]
    if launch.origin_run_id:
        argv += ["--origin-run-id", launch.origin_run_id]
    return argv


class Executor(Protocol):
    """Runs task attempts somewhere and reports them; one instance per run.

    The loop calls, from one thread: `start` / `stop` for the planner's actions,
    `observe` before each plan, `wait` between plans, `close` at the end (also after
    an error or Ctrl-C). Implementations may run threads of their own.
    """

    def start(self, start: StartTask) -> None:
        """Start this attempt (a no-op if it was started before)."""
        ...

    def stop(self, task: TaskId, attempt: int, reason: str) -> None:
        """Stop this attempt if it runs (its observation then says ``deleted``); a
        no-op for one that ended or never started."""
        ...

    def observe(self) -> list[ObservedAttempt]:
        """Every attempt started in this run so far, as it is now."""
        ...

    def wait(self, timeout: float | None) -> None:
        """Block until an attempt changed state (or `timeout` seconds passed; None:
        until a change). Returns at once if a change happened since the last call."""
        ...

    def wake(self) -> None:
        """Make a `wait` in progress (or the next one) return now; callable from any
        thread other than the one in `wait`."""
        ...

    def active(self) -> int:
        """How many attempts are still running (stopped ones until they ended)."""
        ...

    def close(self, grace: float) -> None:
        """Stop whatever still runs (SIGTERM, then after `grace` seconds SIGKILL) and
        release everything; idempotent."""
        ...
