"""A flow's graph, read from its source code (pure).

Owns: the `FlowGraph` / `StepNode` model and building it from a FlowSpec
subclass (`build_graph`). Each step's `self.next(...)` call is read with
`ast` from the flow's source file (the flow is never run to learn its
shape); `kflow._source` parses the step bodies. Steps inherited from
base classes count, and every step records the file and line it is defined
in, so errors can point at it.

The builder never rejects a flow: a broken graph is still built, with what
is wrong recorded on the nodes (`next_calls`, `next_error`, unknown targets
in `out`), and `kflow.lint` turns that into errors. The renderers
(`kflow.render`) and the Flow manifest (`kflow.manifest`) read this model.

Must not import: the Kubernetes or object-store clients, `kflow.lint`,
`kflow.render`.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kflow import _source as tr

StepType = Literal["start", "linear", "split-static", "split-foreach", "split-switch", "join",
                   "end"]
SPLIT_TYPES: frozenset[str] = frozenset({"split-static", "split-foreach", "split-switch"})

__all__ = ["SPLIT_TYPES", "DecoratorSpec", "FlowGraph", "StepNode", "StepType", "build_graph"]


@dataclass(frozen=True)
class DecoratorSpec:
    """A decorator as written on a step or the flow: its name and the attributes set."""

    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    lineno: int = 0                           # line in the file (0: unknown)


@dataclass(frozen=True)
class StepNode:
    """One step: where it goes next and how.

    In a graph that passes `kflow.lint.check` every field means what its
    comment says. In a broken one the type is the builder's best guess
    (a step without a valid transition is `linear`, or `join` when it takes
    inputs) and `out` may name steps that do not exist. `in_steps` and
    `split_parents` cover the steps reachable from start; a switch that
    goes back to itself is in its own `in_steps`. Switch case values are
    kept as text (`1` → ``"1"``); `matching_join` is None for a switch,
    whose branches meet again without a join.
    """

    name: str
    type: StepType
    out: tuple[str, ...]                      # next steps, in the order written
    lineno: int                               # line of the `def`
    next_lineno: int | None = None            # line of the `self.next(...)` call
    foreach_var: str | None = None            # split-foreach: the attribute iterated
    switch_var: str | None = None             # split-switch: the `condition` attribute
    switch_cases: tuple[tuple[str, str], ...] = ()  # split-switch: (case value, step)
    is_join: bool = False                     # takes `inputs`
    in_steps: tuple[str, ...] = ()            # steps that go to this one, in topological order
    split_parents: tuple[str, ...] = ()       # enclosing open splits, outermost first
    matching_join: str | None = None          # static/foreach split: the join closing it
    doc: str = ""
    decorators: tuple[DecoratorSpec, ...] = ()
    # What the linter needs (read from the source; not part of the manifest):
    file: str = ""                            # file the step is defined in (base classes!)
    num_args: int = 1                         # positional parameters of the def, `self` too
    next_calls: tuple[int, ...] = ()          # lines of every `self.next(...)` in the body
    next_error: str | None = None             # why the trailing self.next(...) is invalid
    artifacts: tuple[tuple[str, int], ...] = ()  # (name, line) of each `self.<name> = ...`

    @property
    def is_split(self) -> bool:
        """A static, foreach or switch split."""
        return self.type in SPLIT_TYPES

    def decorator(self, name: str) -> DecoratorSpec | None:
        """The step's decorator called `name`, if it has one."""
        return next((d for d in self.decorators if d.name == name), None)


@dataclass(frozen=True)
class FlowGraph:
    """The whole flow: its steps in topological order (start first, end last)."""

    name: str                                 # the FlowSpec subclass's name
    file: str                                 # the flow file's path
    doc: str
    steps: dict[str, StepNode]
    start: str = "start"
    end: str = "end"
    decorators: tuple[DecoratorSpec, ...] = ()  # flow decorators (@schedule, @project, ...)
    lineno: int = 0                           # line of the `class` statement

    def __getitem__(self, name: str) -> StepNode:
        return self.steps[name]

    def __contains__(self, name: object) -> bool:
        return name in self.steps

    def __iter__(self) -> Iterator[StepNode]:
        return iter(self.steps.values())

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def order(self) -> tuple[str, ...]:
        """Step names in topological order."""
        return tuple(self.steps)


def build_graph(flow_cls: type) -> FlowGraph:
    """Build the graph of `flow_cls` from its source.

    Parameters
    ----------
    flow_cls:
        A FlowSpec subclass. Its steps (methods marked by `@step`, inherited
        ones included) are located in their source files and parsed; nothing
        of the flow is executed.

    Returns
    -------
    FlowGraph
        Steps in topological order, with `in_steps`, `split_parents` and
        `matching_join` computed the way Metaflow computes them.

    Raises
    ------
    OSError
        When the source of the flow class or of a step cannot be read.
    """
    sources = tr.SourceCache()
    file, class_def = sources.class_def(flow_cls)
    raw: dict[str, _RawStep] = {}
    for attr in dir(flow_cls):
        func = getattr(flow_cls, attr, None)
        if callable(func) and getattr(func, "is_step", False):
            raw[attr] = _read_step(attr, func, sources)
    _traverse(raw)
    order = _topological_order(raw)
    position = {name: i for i, name in enumerate(order)}
    steps = {name: raw[name].freeze(position) for name in order}
    return FlowGraph(
        name=flow_cls.__name__,
        file=file,
        doc=inspect.cleandoc(flow_cls.__doc__) if flow_cls.__doc__ else "",
        steps=steps,
        decorators=_flow_decorators(flow_cls, class_def),
        lineno=tr.def_line(class_def) if class_def is not None else 0,
    )


# -- reading the steps ----------------------------------------------------------------------------

@dataclass
class _RawStep:
    """A step while the graph is being built (mutable; frozen into a StepNode at the end)."""

    parsed: tr.ParsedStep
    file: str
    doc: str
    decorators: tuple[DecoratorSpec, ...]
    in_steps: set[str] = field(default_factory=set)
    split_parents: tuple[str, ...] = ()
    matching_join: str | None = None

    @property
    def name(self) -> str:
        return self.parsed.name

    @property
    def type(self) -> StepType:
        return self.parsed.type

    @property
    def out(self) -> tuple[str, ...]:
        return self.parsed.transition.out

    def freeze(self, position: Mapping[str, int]) -> StepNode:
        p, t = self.parsed, self.parsed.transition
        return StepNode(
            name=p.name, type=p.type, out=t.out, lineno=p.lineno, next_lineno=p.next_lineno,
            foreach_var=t.foreach_var, switch_var=t.switch_var, switch_cases=t.switch_cases,
            is_join=p.num_args >= 2,
            in_steps=tuple(sorted(self.in_steps, key=position.__getitem__)),
            split_parents=self.split_parents, matching_join=self.matching_join,
            doc=self.doc, decorators=self.decorators, file=self.file, num_args=p.num_args,
            next_calls=p.next_calls, next_error=t.error, artifacts=p.artifacts,
        )


def _read_step(name: str, func: Any, sources: tr.SourceCache) -> _RawStep:
    file, func_def = sources.function_def(func)
    parsed = tr.parse_step(name, func_def)
    doc = inspect.cleandoc(func.__doc__) if func.__doc__ else ""
    lines = tr.decorator_lines(func_def)
    decos = tuple(_decorator_spec(d, lines) for d in getattr(func, "decorators", None) or ())
    return _RawStep(parsed=parsed, file=file, doc=doc, decorators=decos)


def _decorator_spec(obj: Any, lines: Mapping[str, int]) -> DecoratorSpec:
    """Convert a decorator object (`.name`, `.attributes`, `.lineno`) into a DecoratorSpec.

    The line is the decorator's line in the file when the source shows it
    (it is where an error about it should point), else the object's own.
    """
    name = str(getattr(obj, "name", type(obj).__name__))
    attributes = dict(getattr(obj, "attributes", None) or {})
    own = getattr(obj, "lineno", 0)
    lineno = lines.get(name) or (own if isinstance(own, int) else 0)
    return DecoratorSpec(name=name, attributes=attributes, lineno=lineno)


def _flow_decorators(flow_cls: type, class_def: ast.ClassDef | None) -> tuple[DecoratorSpec, ...]:
    lines = tr.decorator_lines(class_def) if class_def is not None else {}
    found: Mapping[str, Any] = getattr(flow_cls, "_flow_decorators", None) or {}
    specs: list[DecoratorSpec] = []
    for value in found.values():
        # Metaflow keeps a list per name for decorators allowed more than once.
        for obj in value if isinstance(value, list | tuple) else [value]:
            specs.append(_decorator_spec(obj, lines))
    return tuple(specs)


# -- traversal ------------------------------------------------------------------------------------

def _traverse(steps: dict[str, _RawStep]) -> None:
    """Fill in_steps, split_parents and matching_join (Metaflow's `_traverse_graph`).

    Walks every path from start carrying the stack of open static and
    foreach splits: a split pushes itself, a join pops the innermost split
    and becomes its matching join; a switch pushes nothing (its branches
    meet again without a join). A (step, stack) pair already walked is not
    walked again, which keeps this linear in practice where Metaflow's walk
    is exponential in the number of nested splits; the results are the same.
    """
    walked: set[tuple[str, tuple[str, ...]]] = set()

    def walk(name: str, path: tuple[str, ...], parents: tuple[str, ...]) -> None:
        if (name, parents) in walked:
            return
        walked.add((name, parents))
        node = steps[name]
        if node.type in ("split-static", "split-foreach"):
            node.split_parents = parents
            parents = (*parents, name)
        elif node.type == "join":
            if parents:  # a join without a split is left for the linter
                steps[parents[-1]].matching_join = name
                node.split_parents = parents
                parents = parents[:-1]
        else:
            node.split_parents = parents
        for child in node.out:
            if child not in steps:
                continue  # unknown transition: reported by the linter
            steps[child].in_steps.add(name)
            if child not in path:  # loops (a switch's recursion) are walked once
                walk(child, (*path, child), parents)

    if "start" in steps:
        walk("start", ("start",), ())


def _topological_order(steps: dict[str, _RawStep]) -> list[str]:
    """Start first, end last, each step after the steps that lead to it.

    Reverse post-order of a depth-first walk from start that visits
    children in reverse of the written order, so the first branch of a
    split is listed (whole) before the second, like `metaflow show`. Loops
    are cut where they close. Steps not reachable from start follow, by
    line; end comes last whatever the graph says.
    """
    seen: set[str] = set()

    def visit(name: str, post: list[str]) -> list[str]:
        seen.add(name)
        for child in reversed(steps[name].out):
            if child in steps and child not in seen:
                visit(child, post)
        post.append(name)
        return post

    order = visit("start", [])[::-1] if "start" in steps else []
    by_line = sorted(steps, key=lambda s: (steps[s].parsed.lineno, s))
    for name in by_line:  # unreachable steps (and what only they reach), by line
        if name not in seen:
            order.extend(visit(name, [])[::-1])
    if "end" in steps:
        order.remove("end")
        order.append("end")
    return order
