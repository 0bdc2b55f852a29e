"""Exit codes (kflow.runner.exitcodes): distinct, documented, and the exception mapping."""

from __future__ import annotations

import pytest

import kflow.runner.exitcodes as exitcodes
from kflow.runner.exitcodes import (
    CodePackageError,
    ExitCode,
    ParentNotDoneError,
    StoreUnavailableError,
    TaskTerminated,
    UsageError,
    exit_code_for,
)


def test_codes_are_the_contract() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0, "USER_FAILURE": 1, "USAGE": 2, "CODE_PACKAGE": 65, "PARENT_NOT_DONE": 66,
        "INTERNAL": 70, "STORE_UNAVAILABLE": 75, "TERMINATED": 143,
    }


def test_every_code_is_in_the_docstring_table() -> None:
    doc = exitcodes.__doc__ or ""
    for code in ExitCode:
        assert f"{int(code):<4}  {code.name}" in doc


@pytest.mark.parametrize(("exc", "code"), [
    (None, ExitCode.OK),
    (UsageError("x"), ExitCode.USAGE),
    (CodePackageError("x"), ExitCode.CODE_PACKAGE),
    (ParentNotDoneError("x"), ExitCode.PARENT_NOT_DONE),
    (StoreUnavailableError("x"), ExitCode.STORE_UNAVAILABLE),
    (TaskTerminated(), ExitCode.TERMINATED),
    (RuntimeError("a runner bug"), ExitCode.INTERNAL),
])
def test_exit_code_for(exc: BaseException | None, code: ExitCode) -> None:
    assert exit_code_for(exc) is code


def test_infrastructure_codes() -> None:
    assert {c for c in ExitCode if c.is_infrastructure} == {
        ExitCode.INTERNAL, ExitCode.STORE_UNAVAILABLE, ExitCode.TERMINATED}
