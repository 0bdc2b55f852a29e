"""`FlowSpec`, the base class of every flow, and what kflow reads off a flow class.

Owns: the run-time behaviour of flow objects (``self.next``, ``self.input``,
``self.index``, ``self.foreach_stack()``, ``merge_artifacts``, read-only
parameters and constants, not picklable) and the pure introspection of a
flow class (`flow_steps`, `flow_constants`). The graph is built elsewhere
from the source (`kflow.graph`); running a whole flow is the runner's job.
A flow object holds its artifacts as attributes; the runner later swaps
in a store-backed `ArtifactSource`.

Hooks the runner sets on a flow object before calling a step:
``_current_step`` (the step's name), ``_foreach_stack`` (a tuple of
`ForeachFrame`, outermost first) and, for a store-backed task,
``_artifact_source``. After the step, ``_transition`` holds
``(next_step_names, foreach_var)`` and, for a foreach,
``_foreach_num_splits`` / ``_foreach_var``.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, ClassVar

from kflow._location import Location
from kflow.decorator_base import FlowDecorator
from kflow.exceptions import KflowException, MergeArtifactsException
from kflow.inputs import ArtifactSource, Inputs, MemoryArtifacts, plan_merge
from kflow.parameters import Parameter, check_parameters, flow_parameters
from kflow.transitions import resolve_next

__all__ = ["FlowSpec", "ForeachFrame", "flow_constants", "flow_steps", "is_join"]


@dataclass(frozen=True)
class ForeachFrame:
    """One enclosing foreach of a task: the split step, its variable, size, this index, item."""

    step: str
    var: str
    num_splits: int
    index: int
    value: Any


def flow_steps(flow_cls: type) -> dict[str, Callable[..., Any]]:
    """The step functions of a flow class (inherited ones included), in source order."""
    found: dict[str, Callable[..., Any]] = {}
    for klass in reversed(flow_cls.__mro__):
        for name, value in vars(klass).items():
            if callable(value) and getattr(value, "is_step", False):
                found[name] = value
            elif name in found:
                del found[name]  # a subclass replaced the step with something else
    return found


def is_join(func: Callable[..., Any]) -> bool:
    """Whether a step function takes ``inputs`` (``def join(self, inputs)``)."""
    try:
        return len(inspect.signature(func).parameters) >= 2
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False


def _is_constant(name: str, value: Any) -> bool:
    return not (
        name.startswith("_")
        or isinstance(value, Parameter | property | classmethod | staticmethod | type)
        or inspect.isroutine(value)
        or hasattr(type(value), "__get__")
    )


def flow_constants(flow_cls: type) -> dict[str, Any]:
    """Class-level values of a flow: read-only artifacts in every task ("constants")."""
    found: dict[str, Any] = {}
    for klass in reversed(flow_cls.__mro__):
        if klass is object or klass is FlowSpec:
            continue
        for name, value in vars(klass).items():
            if _is_constant(name, value):
                found[name] = value
            else:
                found.pop(name, None)
    return found


class FlowSpec:
    """Base class of a flow: subclass it and mark methods with ``@step``.

    ``MyFlow()`` under ``__main__`` runs the flow-file command line
    (``python flow.py run``); ``MyFlow(use_cli=False)`` only builds the object.
    """

    _flow_decorators: ClassVar[dict[str, FlowDecorator]] = {}
    _applied_flow_decorators: ClassVar[set[str]] = set()
    _constant_names: ClassVar[frozenset[str]] = frozenset()

    # Run-time state with class-level defaults (so `hasattr` is true on every task).
    _current_step: str | None = None
    _transition: tuple[list[str], str | None] | None = None
    _foreach_stack: tuple[ForeachFrame, ...] = ()
    _foreach_num_splits: int | None = None
    _foreach_var: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._flow_decorators = dict(cls._flow_decorators)  # inherited, but each class its own
        check_parameters(flow_parameters(cls), flow_steps(cls))
        cls._constant_names = frozenset(flow_constants(cls))

    def __init__(self, use_cli: bool = True) -> None:
        if use_cli:
            # Imported here: the CLI is heavy and only flow files run as scripts need it.
            flowcli = importlib.import_module("kflow.flowcli")
            flowcli.main(type(self))

    @property
    def name(self) -> str:
        """The flow's name: its class name."""
        return type(self).__name__

    # -- artifacts ------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self)._constant_names:
            raise AttributeError(
                f"'{name}' is a constant of {type(self).__name__} (a class attribute) and is "
                "read-only in steps; store the new value under another name"
            )
        super().__setattr__(name, value)

    def __getstate__(self) -> Any:
        raise KflowException(
            "a flow object cannot be pickled (did you assign self or an element of "
            "inputs to an artifact?)",
            step=self._current_step,
            hint="Store the specific values instead, e.g. self.model = inputs.train.model.",
        )

    def _artifacts(self) -> ArtifactSource:
        """Where this task's artifacts are listed and hashed (the store, or memory)."""
        source: ArtifactSource | None = self.__dict__.get("_artifact_source")
        return source if source is not None else MemoryArtifacts(self)

    # -- foreach ----------------------------------------------------------------------

    @property
    def input(self) -> Any:
        """In a foreach task: this task's item of the list being iterated (None elsewhere)."""
        return self._foreach_stack[-1].value if self._foreach_stack else None

    @property
    def index(self) -> int | None:
        """In a foreach task: this task's position in the list (None elsewhere)."""
        return self._foreach_stack[-1].index if self._foreach_stack else None

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        """``[(index, num_splits, value), ...]`` of the enclosing foreaches, outermost first."""
        return [(frame.index, frame.num_splits, frame.value) for frame in self._foreach_stack]

    # -- transitions ------------------------------------------------------------------

    def next(self, *steps: Any, **keywords: Any) -> None:
        """Say where the flow goes after this step (call once, as the step's last statement).

        ``self.next(self.a)``; ``self.next(self.a, self.b)`` (branches);
        ``self.next(self.a, foreach="items")``;
        ``self.next({"x": self.a, "y": self.b}, condition="attr")`` (switch).
        """
        caller = sys._getframe(1)
        step = self._current_step or caller.f_code.co_name
        transition = resolve_next(
            self,
            steps,
            keywords,
            step=step,
            where=Location(caller.f_code.co_filename, caller.f_lineno),
            already_called=self._transition is not None,
        )
        self._transition = transition.as_artifact()
        if transition.foreach_var is not None:
            self._foreach_var = transition.foreach_var
            self._foreach_num_splits = transition.num_splits

    # -- joins ------------------------------------------------------------------------

    def merge_artifacts(
        self,
        inputs: Inputs,
        include: Collection[str] | None = None,
        exclude: Collection[str] | None = None,
    ) -> None:
        """Copy to this join the artifacts its inputs agree on.

        Only artifacts not already set here are considered; conflicting
        values raise `UnhandledInMergeArtifactsException` (set them first to
        resolve) and nothing is merged. `include` (only these) and `exclude`
        (all but these) are mutually exclusive.
        """
        caller = sys._getframe(1)
        step = self._current_step or caller.f_code.co_name

        def fail(message: str, hint: str | None = None) -> MergeArtifactsException:
            return MergeArtifactsException(
                message, file=caller.f_code.co_filename, line=caller.f_lineno, step=step,
                hint=hint,
            )

        func = flow_steps(type(self)).get(step)
        if not isinstance(inputs, Inputs) or (func is not None and not is_join(func)):
            raise fail(
                "merge_artifacts can only be called in a join step, with its inputs",
                hint="Call self.merge_artifacts(inputs) in a step defined as "
                "`def join(self, inputs)`.",
            )
        if include and exclude:
            raise fail("merge_artifacts takes include= or exclude=, not both")
        for name, value in (("include", include), ("exclude", exclude)):
            if isinstance(value, str):
                raise fail(f"{name}= must be a list of artifact names, not the string {value!r}")
        plan = plan_merge(
            lambda name: hasattr(self, name),
            [flow._artifacts() for flow in inputs],
            include=include or (),
            exclude=exclude or (),
            step=step,
        )
        for name, index in plan.items():
            setattr(self, name, getattr(inputs[index], name))

    # -- running a step (the runner's and the tests' entry point) ------------------------

    def _run_step(self, name: str, inputs: Inputs | None = None) -> None:
        """Run step `name` on this object: sets ``_current_step``, clears the transition."""
        func = flow_steps(type(self)).get(name)
        if func is None:
            raise KflowException(f"{type(self).__name__} has no step '{name}'")
        self._current_step = name
        self._transition = None
        self._foreach_var = None
        self._foreach_num_splits = None
        if is_join(func):
            func(self, inputs if inputs is not None else Inputs([]))
        else:
            func(self)
