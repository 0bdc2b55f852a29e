"""What a finished runner process says about its task attempt (pure).

Owns: `ProcessExit` (what the executor saw of one runner process: exit status,
the result file it wrote, why kflow killed it, if it did) and `observe_exit`,
which turns it into the planner's `ObservedAttempt`, with the same states, failure
reasons and budgets as the operator's reading of a step pod
(`kflow_operator.observe`), so that @retry, @catch and @timeout decide the same
way in both places:

========================================================  ==========================
the process                                               state / reason
========================================================  ==========================
exit 0                                                    succeeded
stopped by kflow (run failed, Ctrl-C)                     failed / the stop's reason,
                                                          ``deleted`` (as a deleted pod)
killed by kflow at ``@timeout`` + grace (deadline)        failed / DeadlineExceeded
exit 1 (StepTimeoutError in the result: DeadlineExceeded)  failed / UserError
exit 2 (bad arguments / parameter values)                 failed / InvalidSpec
exit 65, 66, 70, 75 (runner infrastructure), 126, 127     failed / LaunchError
exit 143 or SIGTERM, not from kflow                       failed / Evicted
SIGKILL not from kflow (the kernel's OOM killer, …)       failed / UserError
could not be started (`spawn_error`)                      failed / LaunchError
any other exit code or signal                             failed / UserError
========================================================  ==========================

A signal death is reported as exit code ``128 + signal`` (what a container runtime
reports), so the planner's budget table (`kflow.planning.failures`) applies as is.

Imports only the standard library, `kflow.api_types` and `kflow.planning`.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from kflow.api_types import FailureReason
from kflow.planning.failures import runner_exit_failure, user_failure
from kflow.planning.model import ObservedAttempt, TaskId, TaskResult

__all__ = ["ProcessExit", "exit_code_of", "observe_exit", "observe_running"]

_R = FailureReason
_LOGS_HINT: Final = "its stderr above (or `python <flow>.py logs`)"
_RUNNER_CODES: Final = {
    65: "the flow file could not be imported or the code is broken",
    66: "a parent task has no successful result (its data is missing)",
    70: "the runner failed (an internal error)",
    75: "the local store could not be written",
    126: "python cannot be executed",
    127: "python was not found",
}


@dataclass(frozen=True)
class ProcessExit:
    """One runner process that ended, as the executor saw it."""

    task: TaskId
    attempt: int
    returncode: int | None            # Popen's: negative for a signal; None: never started
    result_text: str | None = None    # the result file's JSON (the "termination message")
    stop_reason: str | None = None    # kflow stopped it (StopTask.reason)
    deadline: bool = False            # kflow killed it at its @timeout deadline
    spawn_error: str | None = None    # it could not be started (OSError text)
    created_at: datetime | None = None
    finished_at: datetime | None = None
    ready_at: datetime | None = None
    timeout_seconds: int | None = None


def exit_code_of(returncode: int | None) -> int | None:
    """Popen's returncode as a container runtime reports it: signal N → 128 + N."""
    if returncode is None:
        return None
    return 128 - returncode if returncode < 0 else returncode


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code - 128).name
    except ValueError:
        return f"signal {code - 128}"


def _failure(done: ProcessExit, code: int, result: TaskResult | None) -> tuple[str, str]:
    """Reason and message of a process that ended with a non-zero status."""
    if done.stop_reason is not None:
        return done.stop_reason, f"kflow stopped the task ({done.stop_reason})"
    if done.deadline:
        limit = f"{done.timeout_seconds} s" if done.timeout_seconds else "its limit"
        return (_R.DEADLINE_EXCEEDED.value, f"the task ran past its @timeout ({limit}) and "
                "did not stop by itself; kflow killed it")
    runner = runner_exit_failure(code, result, _RUNNER_CODES, _LOGS_HINT)
    if runner is not None:
        return runner
    if code == 143 or code == 128 + signal.SIGTERM:
        return (_R.EVICTED.value, "the task's process was terminated (SIGTERM) by something "
                "other than kflow; it is retried on the infrastructure budget")
    if code > 128:
        return (_R.USER_ERROR.value, f"the task's process was killed ({_signal_name(code)}, "
                f"exit code {code}); with SIGKILL often the kernel's out-of-memory killer")
    return user_failure(result, code, _LOGS_HINT)


def observe_running(task: TaskId, attempt: int, created_at: datetime,
                    ready_at: datetime | None, stopping: bool = False) -> ObservedAttempt:
    """A runner process that is still running (`stopping`: kflow has asked it to stop,
    as a pod being deleted)."""
    return ObservedAttempt(task=task, attempt=attempt, state="running", created_at=created_at,
                           started_at=created_at, ready_at=ready_at,
                           pod_created_at=created_at, deleted=stopping)


def observe_exit(done: ProcessExit) -> ObservedAttempt:
    """The attempt a finished process ran, as the planner sees it (see the module
    docstring for the table)."""
    result = TaskResult.parse(done.result_text)
    base = ObservedAttempt(task=done.task, attempt=done.attempt, state="failed",
                           result=result, created_at=done.created_at,
                           started_at=done.created_at, finished_at=done.finished_at,
                           ready_at=done.ready_at, pod_created_at=done.created_at,
                           deleted=done.stop_reason is not None)
    if done.spawn_error is not None:
        return replace(base, reason=_R.LAUNCH_ERROR.value,
                       message=f"the runner process could not be started: {done.spawn_error}")
    code = exit_code_of(done.returncode)
    if code is None:
        return replace(base, reason=_R.INTERNAL.value,
                       message="the runner process ended without an exit status")
    if code == 0:   # also when it finished just as kflow stopped it: the work is done
        return replace(base, state="succeeded", exit_code=0)
    reason, message = _failure(done, code, result)
    return replace(base, reason=reason, message=message, exit_code=code)
