"""What a ``self.next(...)`` call means, checked the way Metaflow checks it (pure).

Owns: `Transition` (the steps a task goes to, and the foreach / switch
details) and `resolve_next`, which validates one call's arguments against
the flow object and raises `InvalidNextException` for: an unknown keyword,
a second call in the same step, no target, a target that is not a step,
a dict without ``condition``, a ``foreach`` / ``condition`` that is not a
string, a foreach attribute that is missing, not iterable or empty, and a
switch value that is not among the cases. ``num_parallel`` (``@parallel``)
is not supported by kflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sized
from dataclasses import dataclass
from typing import Any

from kflow._location import Location
from kflow.exceptions import InvalidNextException

__all__ = ["Transition", "resolve_next", "step_name_of"]

_KEYWORDS = ("foreach", "condition", "num_parallel")


@dataclass(frozen=True)
class Transition:
    """Where a finished task goes.

    `steps` are the next steps (for a switch, the single chosen one);
    `foreach_var` / `num_splits` are set for a foreach split; `condition`
    and `case` for a switch.
    """

    steps: tuple[str, ...]
    foreach_var: str | None = None
    num_splits: int | None = None
    condition: str | None = None
    case: Any = None

    def as_artifact(self) -> tuple[list[str], str | None]:
        """The ``_transition`` artifact: ``(next_step_names, foreach_var)``."""
        return list(self.steps), self.foreach_var


def step_name_of(target: Any) -> str | None:
    """The step name of ``self.<step>`` (a bound step method), None for anything else."""
    func = getattr(target, "__func__", None)
    if func is not None and getattr(func, "is_step", False):
        name: str = func.name
        return name
    return None


def resolve_next(
    flow: object,
    targets: tuple[Any, ...],
    keywords: Mapping[str, Any],
    *,
    step: str | None,
    where: Location,
    already_called: bool,
) -> Transition:
    """Validate ``self.next(*targets, **keywords)`` in `step` of `flow` and say where it goes."""

    def fail(message: str, hint: str | None = None) -> InvalidNextException:
        return InvalidNextException(
            message, file=where.file, line=where.line or None, step=step, hint=hint
        )

    for key in keywords:
        if key not in _KEYWORDS:
            raise fail(
                f"self.next() got an unknown keyword argument '{key}'",
                hint="self.next() takes steps and optionally foreach='attr' or condition='attr'.",
            )
    if already_called:
        raise fail("self.next() is called more than once", hint="Call self.next() once, last.")
    if keywords.get("num_parallel") is not None:
        raise fail("self.next(..., num_parallel=N) (@parallel) is not supported by kflow")
    foreach = keywords.get("foreach")
    condition = keywords.get("condition")
    if not targets:
        raise fail("self.next() needs at least one step, e.g. self.next(self.end)")

    if len(targets) == 1 and isinstance(targets[0], Mapping):
        return _switch(flow, targets[0], condition, foreach, fail)
    if any(isinstance(target, Mapping) for target in targets):
        raise fail("a switch takes one dict as the only step argument")
    if condition is not None:
        raise fail(
            "condition= is given but the steps are not a dict of cases",
            hint="Write self.next({'a': self.a, 'b': self.b}, condition='attr').",
        )
    names = []
    for position, target in enumerate(targets, start=1):
        name = step_name_of(target)
        if name is None:
            raise fail(
                f"argument {position} of self.next() is not a step: {target!r}",
                hint="Pass steps of this flow, e.g. self.next(self.train).",
            )
        names.append(name)
    if foreach is None:
        return Transition(tuple(names))
    return _foreach(flow, tuple(names), foreach, fail)


def _switch(
    flow: object, cases: Mapping[Any, Any], condition: Any, foreach: Any, fail: Any
) -> Transition:
    if condition is None:
        raise fail(
            "self.next() has a dict of cases but no condition",
            hint="Add condition='attr' naming the attribute whose value picks the case.",
        )
    if not isinstance(condition, str):
        raise fail(f"condition must be a string naming an attribute, not {condition!r}")
    if foreach is not None:
        raise fail("a switch (dict of cases) cannot also be a foreach")
    for case, target in cases.items():
        if step_name_of(target) is None:
            raise fail(f"case {case!r} of the switch does not go to a step: {target!r}")
    if not hasattr(flow, condition):
        raise fail(
            f"the switch condition self.{condition} does not exist",
            hint=f"Set self.{condition} before calling self.next().",
        )
    value = getattr(flow, condition)
    for case, target in cases.items():
        if case == value:
            return Transition((str(step_name_of(target)),), condition=condition, case=case)
    raise fail(
        f"the switch condition self.{condition} is {value!r}, which is not one of the cases: "
        + ", ".join(repr(case) for case in cases)
    )


def _foreach(flow: object, names: tuple[str, ...], foreach: Any, fail: Any) -> Transition:
    if not isinstance(foreach, str):
        raise fail(f"foreach must be a string naming an attribute, not {foreach!r}")
    if len(names) != 1:
        raise fail(f"a foreach goes to exactly one step, not {len(names)}")
    if not hasattr(flow, foreach):
        raise fail(
            f"the foreach variable self.{foreach} does not exist",
            hint=f"Set self.{foreach} to a list (or other iterable) before self.next().",
        )
    values = getattr(flow, foreach)
    try:
        count = len(values) if isinstance(values, Sized) else sum(1 for _ in values)
    except TypeError:
        raise fail(
            f"the foreach variable self.{foreach} is not iterable: {type(values).__name__}"
        ) from None
    if count == 0:
        raise fail(f"the foreach over self.{foreach} produced zero splits",
                   hint="Make sure the list is not empty.")
    return Transition(names, foreach_var=foreach, num_splits=count)
