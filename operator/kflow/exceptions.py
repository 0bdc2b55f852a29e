"""The errors a flow author can meet, and what to catch.

Owns: kflow's user-facing exception types. Every one carries *where*
(file, line, step) and *what to do*, and prints as
``flow.py:12: in step train: what is wrong. What to do.``

The hierarchy (catch the level you need)::

    KflowException                         anything kflow reports about your flow
    ├── InvalidFlowException               the flow class itself is wrong (found when it is defined)
    │   ├── InvalidDecoratorException      unknown attribute, bad value, misplaced,
    │   │                                  duplicated or conflicting decorator
    │   └── InvalidParameterException      bad Parameter: type, default, reserved or
    │                                      duplicate name, name of a step
    ├── ParameterValueException            a parameter value is missing or cannot be parsed
    ├── InvalidNextException               ``self.next(...)`` misused (raised in the step)
    └── MergeArtifactsException            ``merge_artifacts`` misused
        ├── UnhandledInMergeArtifactsException   inputs disagree on artifacts (``.artifacts``)
        └── MissingInMergeArtifactsException     ``include`` names no input has (``.artifacts``)

The merge exceptions keep Metaflow's names so code that inspects them reads
the same. Must not import anything else from kflow.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from types import TracebackType

__all__ = [
    "InvalidDecoratorException",
    "InvalidFlowException",
    "InvalidNextException",
    "InvalidParameterException",
    "KflowException",
    "MergeArtifactsException",
    "MissingInMergeArtifactsException",
    "ParameterValueException",
    "UnhandledInMergeArtifactsException",
]


class KflowException(Exception):
    """A problem in a flow, located and explained.

    Parameters
    ----------
    message:
        What is wrong, as a sentence.
    file, line:
        Where in the user's source the problem is, when known.
    step:
        The step concerned, when there is one.
    hint:
        What to do about it.
    """

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        step: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.step = step
        self.hint = hint

    def location(self) -> str:
        """``file:line: in step X: `` (the parts that are known), or ``""``."""
        prefix = ""
        if self.file:
            prefix = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        if self.step:
            prefix += f"in step {self.step}: "
        return prefix

    def __str__(self) -> str:
        text = self.message.rstrip()
        if self.hint:
            if not text.endswith((".", "!", "?", ":")):
                text += "."
            text += " " + self.hint.strip()
        return self.location() + text


class InvalidFlowException(KflowException):
    """The flow class is malformed; raised while the flow file is imported."""


class InvalidDecoratorException(InvalidFlowException):
    """A decorator has an unknown attribute, a bad value, or is misplaced."""


class InvalidParameterException(InvalidFlowException):
    """A `Parameter` is defined wrongly (type, default, name)."""


class ParameterValueException(KflowException):
    """A parameter's value is missing (required) or does not parse as its type."""


class InvalidNextException(KflowException):
    """`self.next(...)` was called wrongly; raised in the running step."""


class MergeArtifactsException(KflowException):
    """`merge_artifacts` was called wrongly or could not merge."""

    def __init__(
        self,
        message: str,
        artifacts: Iterable[str] = (),
        file: str | None = None,
        line: int | None = None,
        step: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, file=file, line=line, step=step, hint=hint)
        self.artifacts: list[str] = list(artifacts)


class UnhandledInMergeArtifactsException(MergeArtifactsException):
    """Inputs of a join hold different values for the same artifacts; nothing was merged."""


class MissingInMergeArtifactsException(MergeArtifactsException):
    """Artifacts named in `include` exist on none of the inputs; nothing was merged."""


def _print_kflow_errors(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    """Show an uncaught KflowException as its message alone: it already says what,
    where and what to do. `KFLOW_DEBUG=1` shows the traceback too."""
    if issubclass(kind, KflowException) and not os.environ.get("KFLOW_DEBUG"):
        print(f"error: {value}", file=sys.stderr)
    else:
        sys.__excepthook__(kind, value, traceback)


def install_excepthook() -> None:
    """Use `_print_kflow_errors` for uncaught errors, unless another hook is set
    (IPython, a debugger): a flow file that fails while its class is defined
    (a bad decorator attribute, say) then prints one clear line and exits 1."""
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _print_kflow_errors
