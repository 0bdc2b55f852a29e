"""The runner's process exit codes: the contract with the operator (pure).

Owns: `ExitCode`, the runner's error types (`RunnerError` and its
subclasses, each carrying the code it exits with) and `exit_code_for`,
which maps any exception that ends a task to its code. Imports nothing
from the rest of kflow, so the operator could read the table without the
runner (it only needs the numbers).

====  ==================  ======================================================  ========
code  name                meaning                                                 retry?
====  ==================  ======================================================  ========
0     OK                  the step succeeded (also: a failure handled by @catch)  --
1     USER_FAILURE        the step's code raised (or hit @timeout); the task      @retry
                          record holds the exception and traceback, DONE is
                          written with ok=false
2     USAGE               bad command-line arguments or parameter values          no
65    CODE_PACKAGE        the code package's checksum does not match, it is      no
                          not a kflow package, or the flow file cannot be
                          imported / has no such flow (EX_DATAERR)
66    PARENT_NOT_DONE     a parent task has no successful DONE attempt           no
                          (EX_NOINPUT): the operator started a task too early
                          or the parent's data is gone
70    INTERNAL            a bug in the runner (EX_SOFTWARE)                      platform
75    STORE_UNAVAILABLE   the artifact store was unreachable after retries       platform
                          with back-off (EX_TEMPFAIL)
143   TERMINATED          SIGTERM (deadline, eviction, deletion); the record     platform
                          says so when there was time to write it
====  ==================  ======================================================  ========

A process killed outright (OOM: 137, SIGKILL) writes nothing; the operator
learns that from the pod status.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "CodePackageError",
    "ExitCode",
    "ParentNotDoneError",
    "RunnerError",
    "StoreUnavailableError",
    "TaskTerminated",
    "UsageError",
    "exit_code_for",
]


class ExitCode(IntEnum):
    """How a runner process ends (see the module docstring for the table)."""

    OK = 0
    USER_FAILURE = 1
    USAGE = 2
    CODE_PACKAGE = 65
    PARENT_NOT_DONE = 66
    INTERNAL = 70
    STORE_UNAVAILABLE = 75
    TERMINATED = 143

    @property
    def is_infrastructure(self) -> bool:
        """Codes that say nothing about the user's code (the platform retry budget)."""
        return self in (ExitCode.INTERNAL, ExitCode.STORE_UNAVAILABLE, ExitCode.TERMINATED)


class RunnerError(Exception):
    """A task could not run for a reason outside the step's code."""

    exit_code: ExitCode = ExitCode.INTERNAL
    kind: str = "RunnerError"


class UsageError(RunnerError):
    """Bad arguments: the operator (or a person) called the runner wrongly."""

    exit_code = ExitCode.USAGE
    kind = "UsageError"


class CodePackageError(RunnerError):
    """The code package is corrupt, substituted, not a package, or not importable."""

    exit_code = ExitCode.CODE_PACKAGE
    kind = "CodePackageError"


class ParentNotDoneError(RunnerError):
    """A parent task of this task has no successful DONE attempt."""

    exit_code = ExitCode.PARENT_NOT_DONE
    kind = "ParentNotDoneError"


class StoreUnavailableError(RunnerError):
    """The artifact store did not answer, even after retries."""

    exit_code = ExitCode.STORE_UNAVAILABLE
    kind = "StoreUnavailableError"


class TaskTerminated(BaseException):
    """Raised in the main thread on SIGTERM; a BaseException so user code's
    ``except Exception`` does not swallow it."""


def exit_code_for(exc: BaseException | None) -> ExitCode:
    """The exit code of a task that ended with `exc` (None: success)."""
    if exc is None:
        return ExitCode.OK
    if isinstance(exc, RunnerError):
        return exc.exit_code
    if isinstance(exc, TaskTerminated):
        return ExitCode.TERMINATED
    return ExitCode.INTERNAL
