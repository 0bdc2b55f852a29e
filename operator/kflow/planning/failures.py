"""Which retry budget a failed attempt spends, and the reason it reports (pure).

Owns: `Budget` and `classify`, and `runner_exit_failure`: what the runner's own exit
codes mean (1, 2 and its infrastructure codes), shared by the two shells that read a
finished runner (a step pod: `kflow_operator.observe`; a local process:
`kflow.local.observe`). The table follows docs/api.md ("failure.reason") and
`kflow.runner.exitcodes`:

=====================================================  =========  ===================
failed attempt                                         budget     reason
=====================================================  =========  ===================
exit 1, reason UserError, OOMKilled, DeadlineExceeded  user       as observed
exit 66, 70, 75 (whatever the reason); Evicted,        infra      as observed, else
Preempted, NodeLost; exit 143;
a pod deleted under us; no reason and no exit code                Internal / NodeLost
exit 2 (usage), exit 65 (bad code package),            none       Internal /
Unschedulable, ImageError, LaunchError, InvalidSpec               InvalidSpec / as is
=====================================================  =========  ===================

(`user`: the step's @retry budget; `infra`: the per-task infrastructure
budget of `PlannerConfig`; `none`: the task fails at once.)

Must not import: kopf, kubernetes, minio, kflow.store, kflow.runner (the exit
codes are repeated here as numbers on purpose).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from kflow.api_types import PLATFORM_FAILURES, FailureReason
from kflow.planning.model import ObservedAttempt, TaskResult

__all__ = ["Budget", "classify", "runner_exit_failure", "user_failure"]

_USER_REASONS = frozenset({FailureReason.USER_ERROR, FailureReason.OOM_KILLED,
                           FailureReason.DEADLINE_EXCEEDED})
_FATAL_REASONS = frozenset({FailureReason.UNSCHEDULABLE, FailureReason.IMAGE_ERROR,
                            FailureReason.LAUNCH_ERROR, FailureReason.INVALID_SPEC})
_INFRA_EXIT_CODES = frozenset({66, 70, 75, 143})
_RUNNER_INFRA_EXIT_CODES = frozenset({66, 70, 75})
EXIT_USER_FAILURE = 1
EXIT_USAGE = 2
EXIT_CODE_PACKAGE = 65


def user_failure(result: TaskResult | None, exit_code: int,
                 logs_hint: str) -> tuple[str, str]:
    """Reason and message of a step whose code failed: the exception in the runner's
    result (a @timeout is DeadlineExceeded), else the exit code and where the logs are."""
    if result is not None and result.error_type == "StepTimeoutError":
        return (FailureReason.DEADLINE_EXCEEDED.value,
                result.error_message or "the step hit its @timeout")
    if result is not None and (result.error_type or result.error_message):
        return (FailureReason.USER_ERROR.value,
                f"{result.error_type or 'Exception'}: {result.error_message or ''}".rstrip())
    return (FailureReason.USER_ERROR.value,
            f"the step's code failed (exit code {exit_code}); {logs_hint} shows why")


def runner_exit_failure(code: int, result: TaskResult | None, runner_codes: Mapping[int, str],
                        logs_hint: str) -> tuple[str, str] | None:
    """Reason and message for the runner's own exit codes: 1 (the step's code), 2 (bad
    arguments), and `runner_codes` (its infrastructure codes, with what each means where
    it ran); None for any other code (signals, the platform's), which the caller reads."""
    error = f": {result.error_message}" if result is not None and result.error_message else ""
    if code == EXIT_USER_FAILURE:
        return user_failure(result, code, logs_hint)
    if code == EXIT_USAGE:
        return (FailureReason.INVALID_SPEC.value,
                f"the runner rejected its arguments (exit code 2){error}")
    if code in runner_codes:
        return (FailureReason.LAUNCH_ERROR.value,
                f"the task could not run: {runner_codes[code]} (exit code {code}){error}")
    return None


class Budget(enum.Enum):
    """The retry budget a failure spends."""

    USER = "user"
    INFRA = "infra"
    NONE = "none"


def _reason(value: str | None) -> FailureReason | None:
    try:
        return FailureReason(value) if value else None
    except ValueError:
        return None


def classify(attempt: ObservedAttempt) -> tuple[Budget, FailureReason]:
    """The budget a failed attempt spends and the `failure.reason` it reports."""
    reason = _reason(attempt.reason)
    code = attempt.exit_code
    if code == EXIT_USAGE:
        return Budget.NONE, reason or FailureReason.INTERNAL
    if code == EXIT_CODE_PACKAGE:
        return Budget.NONE, FailureReason.INVALID_SPEC
    if code in _RUNNER_INFRA_EXIT_CODES and not attempt.deleted:
        # kflow_operator.observe reports these as LaunchError: the budget is the code's
        return Budget.INFRA, reason or FailureReason.INTERNAL
    if reason in _FATAL_REASONS:
        assert reason is not None
        return Budget.NONE, reason
    if reason in _USER_REASONS:
        assert reason is not None
        return Budget.USER, reason
    if reason in PLATFORM_FAILURES:
        assert reason is not None
        return Budget.INFRA, reason
    if code == EXIT_USER_FAILURE and not attempt.deleted:
        return Budget.USER, FailureReason.USER_ERROR
    if attempt.deleted:
        return Budget.INFRA, reason or FailureReason.NODE_LOST
    if code in _INFRA_EXIT_CODES or code is None:
        return Budget.INFRA, reason or FailureReason.INTERNAL
    # any other exit code: the step's process died in a way only its code explains
    return Budget.USER, reason or FailureReason.USER_ERROR
