"""Signals around a step: ``@timeout`` (SIGALRM) and SIGTERM.

Owns: `StepTimeoutError` (what a step that ran too long raises, a user
failure that ``@retry`` and ``@catch`` treat like any exception),
`deadline`, which arms SIGALRM for the step's duration, and
`raise_on_sigterm`, which turns SIGTERM (the kubelet's deadline or an
eviction) into `TaskTerminated` in the main thread so the runner can still
flush logs and record the attempt. Both only work in the main thread,
which is where the runner calls the step.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from kflow.runner.exitcodes import TaskTerminated

__all__ = ["StepTimeoutError", "deadline", "raise_on_sigterm"]


class StepTimeoutError(Exception):
    """The step ran longer than its ``@timeout``."""


def _describe(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}"
             for n, unit in ((hours, "hour"), (minutes, "minute"), (secs, "second")) if n]
    return ", ".join(parts) or f"{seconds:g} seconds"


@contextmanager
def deadline(seconds: float | None, step: str) -> Iterator[None]:
    """Raise `StepTimeoutError` in the block if it runs longer than `seconds` (None: no limit)."""
    if not seconds:
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise StepTimeoutError(
            f"step '{step}' timed out after {_describe(seconds)} (@timeout); make it "
            "faster or raise the limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises `TaskTerminated` in the main thread."""

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        raise TaskTerminated("the task was terminated (SIGTERM: deadline, eviction or "
                             "deletion of its pod)")

    signal.signal(signal.SIGTERM, terminate)
