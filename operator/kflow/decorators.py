"""``@step`` and the public step / flow decorators, and the rules for applying them.

Owns: the user-facing names (`step`, `resources`, `kubernetes`, `batch`,
`retry`, `catch`, `timeout`, `environment`, `schedule`, `project`,
`trigger_on_finish`), usable bare (``@retry``) or called
(``@retry(times=2)``), and the placement rules: step decorators go *above*
``@step`` (as in Metaflow), at most one of each per step, never `@batch`
with `@kubernetes`; flow decorators go above the FlowSpec subclass, once
each. The decorator objects themselves are in `kflow.step_decorators` and
`kflow.flow_decorators`.

Contract read by the graph builder and the manifest:

- a step function has ``func.is_step = True``, ``func.name`` (its name) and
  ``func.decorators``: the list of `StepDecorator` objects on it, innermost
  first (the one written right above ``@step`` comes first);
- a flow class has ``cls._flow_decorators``: ``{name: FlowDecorator}``,
  inherited from base flows and extended by the class's own.

Every decorator object has ``.name``, ``.attributes`` (only what the user
set, normalised), ``.defaults``, ``.get(attr)`` and ``.lineno``. The pure
per-step readers (`step_resources`, `timeout_seconds`, `retry_policy`) live
in `kflow.resources` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from kflow._location import Location, caller_location, def_location
from kflow.decorator_base import FlowDecorator, StepDecorator
from kflow.exceptions import InvalidDecoratorException, InvalidFlowException
from kflow.flow_decorators import (
    ProjectDecorator,
    ScheduleDecorator,
    TriggerOnFinishDecorator,
)
from kflow.flowspec import FlowSpec
from kflow.resources import (
    RetryPolicy,
    StepResources,
    retry_policy,
    step_resources,
    timeout_seconds,
)
from kflow.step_decorators import (
    BatchDecorator,
    CatchDecorator,
    EnvironmentDecorator,
    KubernetesDecorator,
    ResourcesDecorator,
    RetryDecorator,
    TimeoutDecorator,
)

__all__ = [
    "FlowDecoratorFactory",
    "RetryPolicy",
    "StepDecoratorFactory",
    "StepResources",
    "batch",
    "catch",
    "environment",
    "kubernetes",
    "project",
    "resources",
    "retry",
    "retry_policy",
    "schedule",
    "step",
    "step_decorators",
    "step_resources",
    "timeout",
    "timeout_seconds",
    "trigger_on_finish",
]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type[Any])
S = TypeVar("S", bound=StepDecorator)
D = TypeVar("D", bound=FlowDecorator)

_COMPUTE = ("batch", "kubernetes")
_ABOVE_STEP_HINT = (
    "Write step decorators above @step, e.g.\n"
    "    @retry(times=2)\n"
    "    @step\n"
    "    def train(self): ..."
)


def step(func: F) -> F:
    """Mark a method of a FlowSpec subclass as a step."""
    if isinstance(func, type) or not callable(func):
        raise InvalidFlowException(
            f"@step marks methods of a FlowSpec subclass, not {func!r}",
            hint="Put @step right above `def <name>(self):` inside the flow class.",
        )
    func.is_step = True  # type: ignore[attr-defined]
    func.name = func.__name__  # type: ignore[attr-defined]
    if not hasattr(func, "decorators"):
        func.decorators = []  # type: ignore[attr-defined]
    return func


def step_decorators(func: Callable[..., Any]) -> list[StepDecorator]:
    """The decorators on a step function (``func.decorators``), empty for anything else."""
    found: list[StepDecorator] = list(getattr(func, "decorators", []))
    return found


class StepDecoratorFactory(Generic[S]):
    """A public step decorator such as `retry`: bare, or called with keyword attributes."""

    def __init__(self, decorator_class: type[S]) -> None:
        self.decorator_class = decorator_class
        self.__name__ = decorator_class.name
        self.__doc__ = decorator_class.__doc__

    @overload
    def __call__(self, func: F, /) -> F: ...

    @overload
    def __call__(self, /, **attributes: Any) -> Callable[[F], F]: ...

    def __call__(self, func: Any = None, /, **attributes: Any) -> Any:
        lineno = caller_location().line
        if func is None:
            return lambda target: self._apply(target, attributes, lineno)
        if not callable(func) or attributes:
            raise InvalidDecoratorException(
                f"@{self.__name__} takes keyword attributes only, not {func!r}",
                hint=f"Write e.g. @{self.__name__}({_example(self.decorator_class)}).",
            )
        return self._apply(func, {}, lineno)

    def _apply(self, func: F, attributes: dict[str, Any], lineno: int) -> F:
        name = self.__name__
        if isinstance(func, type):
            raise InvalidDecoratorException(
                f"@{name} is a step decorator, but it is on class {func.__name__}",
                line=lineno or None,
                hint=f"Put @{name} above @step on a step method.",
            )
        where = def_location(func)
        if not getattr(func, "is_step", False):
            raise InvalidDecoratorException(
                f"@{name} is on `def {func.__name__}`, which is not a step (yet): it must be "
                "placed above @step",
                file=where.file,
                line=where.line or None,
                hint=_ABOVE_STEP_HINT,
            )
        deco = self.decorator_class(
            attributes, lineno=lineno, where=where, step_name=func.__name__
        )
        existing = step_decorators(func)
        if any(other.name == name for other in existing):
            raise deco.error(
                f"@{name} appears twice on this step", hint=f"Keep one @{name} on the step."
            )
        if name in _COMPUTE and any(other.name in _COMPUTE for other in existing):
            raise deco.error(
                "@batch and @kubernetes are both on this step",
                hint="kflow runs every step as a pod: keep one of them (their resources and "
                "image are read the same way).",
            )
        existing.append(deco)
        func.decorators = existing  # type: ignore[attr-defined]
        return func


class FlowDecoratorFactory(Generic[D]):
    """A public flow decorator such as `schedule`: bare, or called with keyword attributes."""

    def __init__(self, decorator_class: type[D]) -> None:
        self.decorator_class = decorator_class
        self.__name__ = decorator_class.name
        self.__doc__ = decorator_class.__doc__

    @overload
    def __call__(self, cls: C, /) -> C: ...

    @overload
    def __call__(self, /, **attributes: Any) -> Callable[[C], C]: ...

    def __call__(self, cls: Any = None, /, **attributes: Any) -> Any:
        where = caller_location()
        if cls is None:
            return lambda target: self._apply(target, attributes, where)
        if not callable(cls) or attributes:
            raise InvalidDecoratorException(
                f"@{self.__name__} takes keyword attributes only, not {cls!r}",
                file=where.file,
                line=where.line or None,
                hint=f"Write e.g. @{self.__name__}({_example(self.decorator_class)}).",
            )
        return self._apply(cls, {}, where)

    def _apply(self, cls: C, attributes: dict[str, Any], where: Location) -> C:
        name = self.__name__
        if not (isinstance(cls, type) and issubclass(cls, FlowSpec)):
            target = getattr(cls, "__name__", repr(cls))
            raise InvalidDecoratorException(
                f"@{name} is a flow decorator, but it is on {target}",
                file=where.file,
                line=where.line or None,
                hint=f"Put @{name} above `class MyFlow(FlowSpec):`.",
            )
        deco = self.decorator_class(attributes, lineno=where.line, where=where)
        applied: set[str] = cls.__dict__.get("_applied_flow_decorators", set())
        if name in applied:
            raise deco.error(
                f"@{name} appears twice on flow {cls.__name__}", hint=f"Keep one @{name}."
            )
        cls._applied_flow_decorators = applied | {name}
        cls._flow_decorators = {**cls._flow_decorators, name: deco}
        return cls


def _example(decorator_class: type[StepDecorator] | type[FlowDecorator]) -> str:
    first = next(iter(decorator_class.ATTRIBUTES), "")
    return f"{first}=..." if first else ""


resources = StepDecoratorFactory(ResourcesDecorator)
kubernetes = StepDecoratorFactory(KubernetesDecorator)
batch = StepDecoratorFactory(BatchDecorator)
retry = StepDecoratorFactory(RetryDecorator)
catch = StepDecoratorFactory(CatchDecorator)
timeout = StepDecoratorFactory(TimeoutDecorator)
environment = StepDecoratorFactory(EnvironmentDecorator)

schedule = FlowDecoratorFactory(ScheduleDecorator)
project = FlowDecoratorFactory(ProjectDecorator)
trigger_on_finish = FlowDecoratorFactory(TriggerOnFinishDecorator)
