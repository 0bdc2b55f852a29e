"""Which tasks a task reads its inputs from, derived from the graph (pure).

Owns: task paths (the TASK argument: ``"0"`` outside any foreach, ``"3"``
inside one, ``"3.1"`` inside a nested one), a step's foreach depth, and
`resolve_inputs`, which turns (graph, step, path) into the input *slots* of
the task. The operator never passes lists of parents: the runner derives
them here, so a 10,000-way foreach join costs the operator nothing.

A slot is the tuple of candidate parent tasks of which exactly one must
have run: usually one candidate; several after a switch (whichever case
ran) or when a branch of a static split holds a switch. The I/O side
(`kflow.runner.execute`) takes, per slot, the first candidate with a
successful DONE attempt.

=================  ========================================================
step               its slots
=================  ========================================================
start              none (its "inputs" are the parameters)
linear             its in_step at the same path, or at the path minus its
                   last index when the in_step is the foreach split that
                   opens this step's foreach
after a switch     one slot: every in_step at the same path
foreach join       ``path + (i,)`` of the body's last step, for i in
                   ``range(num_splits)`` (num_splits read from the split
                   task at ``path``, through the `num_splits` callback)
static join        one slot per branch of the split it closes, holding the
                   in_steps reachable from that branch
=================  ========================================================

Must not import: the store, cloudpickle, anything that does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from kflow.graph import FlowGraph, StepNode

__all__ = [
    "InputPlan",
    "TaskPath",
    "TaskRef",
    "foreach_depth",
    "format_task_path",
    "parse_task_path",
    "resolve_inputs",
]

TaskPath = tuple[int, ...]
"""Foreach indices, outermost first; ``()`` outside any foreach."""

InputKind = Literal["start", "linear", "foreach-child", "join-foreach", "join-static"]


@dataclass(frozen=True, order=True)
class TaskRef:
    """One task of the run: a step and its foreach path."""

    step: str
    path: TaskPath

    @property
    def task_id(self) -> str:
        """The TASK string of this task (``"0"``, ``"3"``, ``"3.1"``)."""
        return format_task_path(self.path)

    def __str__(self) -> str:
        return f"{self.step}/{self.task_id}"


@dataclass(frozen=True)
class InputPlan:
    """Where a task's inputs come from.

    `slots` hold candidate parents (exactly one of each slot ran). For a
    foreach child, `split` is the split task whose foreach variable gives
    ``self.input``; for a foreach join it is the split task being closed.
    """

    kind: InputKind
    slots: tuple[tuple[TaskRef, ...], ...] = ()
    split: TaskRef | None = None


def parse_task_path(text: str, depth: int | None = None) -> TaskPath:
    """``"0"`` → ``()`` at depth 0; ``"3.1"`` → ``(3, 1)``.

    With `depth` given, the number of indices must match it (``"0"`` is the
    only path at depth 0). Raises ValueError for anything else.
    """
    parts = text.split(".")
    if not text or any(not part.isdigit() or (len(part) > 1 and part[0] == "0")
                       for part in parts):
        raise ValueError(f"task {text!r} is not a foreach index path like 0, 3 or 3.1")
    indices = tuple(int(part) for part in parts)
    if depth is None:
        return indices
    if depth == 0:
        if indices != (0,):
            raise ValueError(f"task {text!r}: this step is outside any foreach, its task is 0")
        return ()
    if len(indices) != depth:
        raise ValueError(f"task {text!r}: this step is inside {depth} nested foreach(es), "
                         f"so its task has {depth} index(es)")
    return indices


def format_task_path(path: TaskPath) -> str:
    """The TASK string of a path: ``()`` → ``"0"``, ``(3, 1)`` → ``"3.1"``."""
    return ".".join(str(i) for i in path) if path else "0"


def _is_foreach(graph: FlowGraph, name: str) -> bool:
    return name in graph and graph[name].type == "split-foreach"


def foreach_depth(graph: FlowGraph, step: str) -> int:
    """How many foreaches enclose the tasks of `step` (the length of their paths)."""
    node = graph[step]
    parents = node.split_parents
    if node.type == "join" and parents:
        parents = parents[:-1]  # a join's split_parents include the split it closes
    return sum(1 for name in parents if _is_foreach(graph, name))


def _linear_parent(graph: FlowGraph, parent: str, path: TaskPath) -> TaskRef:
    if _is_foreach(graph, parent):  # the split that opens this step's foreach
        return TaskRef(parent, path[:-1])
    return TaskRef(parent, path)


def _branch_of(graph: FlowGraph, split: StepNode, join: str) -> dict[str, str]:
    """Each step inside the split → the branch head (a step of `split.out`) it belongs to."""
    owner: dict[str, str] = {}
    for head in split.out:
        todo = [head]
        while todo:
            name = todo.pop()
            if name == join or name in owner or name not in graph:
                continue
            owner[name] = head
            todo.extend(graph[name].out)
    return owner


def resolve_inputs(
    graph: FlowGraph,
    step: str,
    path: TaskPath,
    num_splits: Callable[[TaskRef], int],
) -> InputPlan:
    """The input slots of task (`step`, `path`); see the module docstring.

    `num_splits(split_task)` is called for a foreach join only. Raises
    ValueError for a step or path that does not fit the graph.
    """
    if step not in graph:
        raise ValueError(f"flow {graph.name} has no step '{step}'")
    depth = foreach_depth(graph, step)
    if len(path) != depth:
        raise ValueError(f"step '{step}' runs inside {depth} foreach(es); its task path "
                         f"has {depth} index(es), not {format_task_path(path)!r}")
    node = graph[step]
    in_steps = tuple(s for s in node.in_steps if s != step)  # a switch's self-loop
    if step == graph.start or not in_steps:
        return InputPlan("start")
    if node.type == "join" and node.split_parents:
        split = graph[node.split_parents[-1]]
        split_task = TaskRef(split.name, path)
        if split.type == "split-foreach":
            count = num_splits(split_task)
            slots = tuple(
                tuple(TaskRef(s, (*path, i)) for s in in_steps) for i in range(count)
            )
            return InputPlan("join-foreach", slots, split_task)
        owner = _branch_of(graph, split, step)
        slots = tuple(
            tuple(TaskRef(s, path) for s in in_steps if owner.get(s) == head)
            for head in split.out
        )
        return InputPlan("join-static", tuple(slot for slot in slots if slot), split_task)
    candidates = tuple(_linear_parent(graph, s, path) for s in in_steps)
    if len(candidates) == 1 and _is_foreach(graph, in_steps[0]):
        return InputPlan("foreach-child", (candidates,), candidates[0])
    return InputPlan("linear", (candidates,))
