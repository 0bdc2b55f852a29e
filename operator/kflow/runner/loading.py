"""Reading a task's parents from the store: their records, indexes and foreach frames.

Owns: `RunReader` (the records of the other tasks of this run: latest DONE
attempt, its metadata, its artifact index, the split count it reported)
and `load_inputs`, which turns an `InputPlan` into loaded `ParentTask`s and
the task's foreach stack. Only indexes and the few values needed for
``self.input`` / ``foreach_stack()`` are read here; every other artifact
is loaded when the step touches it (`kflow.runner.artifacts`). The parents
of a foreach join are read in parallel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from kflow.flowspec import ForeachFrame
from kflow.runner.exitcodes import ParentNotDoneError
from kflow.runner.inputs import InputPlan, TaskRef
from kflow.store import ArtifactIndex, Datastore, ObjectNotFound, TaskKey, TaskMetadata

if TYPE_CHECKING:
    from kflow.graph import FlowGraph

__all__ = ["CLONED_ATTEMPT", "FOREACH_STACK", "RESULT_KEY", "LoadedInputs", "ParentTask",
           "RunReader", "load_inputs"]

RESULT_KEY = "result"
"""The key in ``meta.json``'s ``extra`` holding the task's result JSON (`kflow.runner.result`)."""
FOREACH_STACK = "_foreach_stack"
_PARALLEL_READS = 16


@dataclass(frozen=True)
class ParentTask:
    """A parent task's successful attempt: its record and artifact index."""

    ref: TaskRef
    attempt: int
    meta: TaskMetadata
    index: ArtifactIndex

    def describe(self) -> str:
        return f"step '{self.ref.step}' (task {self.ref.task_id})"


@dataclass(frozen=True)
class LoadedInputs:
    """A task's parents (one per slot of its plan, in order) and its foreach stack."""

    plan: InputPlan
    parents: tuple[ParentTask, ...]
    foreach_stack: tuple[ForeachFrame, ...]


CLONED_ATTEMPT = 0
"""The attempt number a task cloned from a ``resumeFrom`` origin gets in this run: a
cloned task never runs in this run's first generation, and an in-place resume's
attempts start at 100, so the number is free."""


class RunReader:
    """The records of the tasks of one run (and of its ``resumeFrom`` origin).

    With `origin_run_id`, a task that has no DONE attempt in this run is looked up in
    the origin run: if it succeeded there, its records are cloned into this run
    (`Datastore.clone_attempt`, attempt `CLONED_ATTEMPT`) and read from here on. The
    operator starts a task only once its parents are done in this run or kept from the
    origin, so a parent missing here is one the planner cloned.
    """

    def __init__(self, store: Datastore, namespace: str, flow: str, run_id: str,
                 origin_run_id: str | None = None) -> None:
        self.store, self.namespace, self.flow, self.run_id = store, namespace, flow, run_id
        self.origin_run_id = origin_run_id

    def key(self, ref: TaskRef) -> TaskKey:
        return TaskKey(self.namespace, self.flow, self.run_id, ref.step, ref.task_id)

    def done(self, ref: TaskRef) -> tuple[int, TaskMetadata] | None:
        """The latest DONE attempt of a task and its metadata, None without one."""
        key = self.key(ref)
        attempt = self.store.latest_done_attempt(key)
        if attempt is None:
            return self._clone(ref)
        return attempt, self.store.read_meta(key.attempt(attempt))

    def _clone(self, ref: TaskRef) -> tuple[int, TaskMetadata] | None:
        if not self.origin_run_id:
            return None
        source = TaskKey(self.namespace, self.flow, self.origin_run_id, ref.step, ref.task_id)
        attempt = self.store.latest_done_attempt(source)
        if attempt is None:
            return None
        origin = self.store.read_meta(source.attempt(attempt))
        if origin.exit_status != 0:
            return None
        return CLONED_ATTEMPT, self.store.clone_attempt(
            source.attempt(attempt), self.key(ref).attempt(CLONED_ATTEMPT), origin)

    def parent(self, slot: Sequence[TaskRef], child: str) -> ParentTask:
        """The first candidate of `slot` whose latest DONE attempt succeeded."""
        failed: list[str] = []
        for ref in slot:
            found = self.done(ref)
            if found is None:
                continue
            attempt, meta = found
            if meta.exit_status != 0:
                failed.append(f"{ref} (attempt {attempt} exited {meta.exit_status})")
                continue
            try:
                index = self.store.read_index(self.key(ref).attempt(attempt))
            except ObjectNotFound as exc:
                raise ParentNotDoneError(f"the artifact index of {ref} attempt {attempt} "
                                         f"is missing: {exc}") from None
            return ParentTask(ref, attempt, meta, index)
        which = " or ".join(str(ref) for ref in slot)
        if failed:
            raise ParentNotDoneError(f"the parent of '{child}' did not succeed: "
                                     + "; ".join(failed))
        raise ParentNotDoneError(f"the parent of '{child}' ({which}) has no DONE attempt in "
                                 f"run {self.run_id}; it must finish before '{child}' starts")

    def result(self, ref: TaskRef) -> dict[str, Any]:
        """The result JSON a task recorded (its termination message)."""
        found = self.done(ref)
        if found is None:
            raise ParentNotDoneError(f"{ref} has no DONE attempt in run {self.run_id}")
        text = found[1].extra.get(RESULT_KEY)
        if not text:
            raise ParentNotDoneError(f"{ref} recorded no result")
        doc: dict[str, Any] = json.loads(text)
        return doc

    def num_splits(self, ref: TaskRef) -> int:
        """How many tasks the foreach split task `ref` fanned out to."""
        foreach = self.result(ref).get("foreach") or {}
        splits = foreach.get("splits")
        if not isinstance(splits, int):
            raise ParentNotDoneError(f"{ref} recorded no foreach split count")
        return splits


def _item(items: Any, index: int) -> Any:
    """``items[index]``, also for iterables that cannot be indexed (Metaflow's rule)."""
    try:
        return items[index]
    except TypeError:
        return next(islice(iter(items), index, None))


def _stack_of(store: Datastore, parent: ParentTask) -> tuple[ForeachFrame, ...]:
    ref = parent.index.get(FOREACH_STACK)
    if ref is None:
        return ()
    stack = store.load(ref)
    return tuple(stack) if isinstance(stack, tuple | list) else ()


def load_inputs(store: Datastore, reader: RunReader, graph: FlowGraph, plan: InputPlan,
                step: str, path: tuple[int, ...]) -> LoadedInputs:
    """Read the parents of task (`step`, `path`) and compute its foreach stack."""
    slots = plan.slots
    if len(slots) > 1:
        with ThreadPoolExecutor(min(_PARALLEL_READS, len(slots)),
                                thread_name_prefix="kflow-inputs") as pool:
            parents = tuple(pool.map(lambda slot: reader.parent(slot, step), slots))
    else:
        parents = tuple(reader.parent(slot, step) for slot in slots)
    stack: tuple[ForeachFrame, ...] = ()
    if plan.kind == "foreach-child":
        split = parents[0]
        var = graph[split.ref.step].foreach_var
        if var is None or var not in split.index:
            raise ParentNotDoneError(f"{split.describe()} has no foreach variable "
                                     f"'{var}' to split over")
        index = path[-1]
        num_splits = reader.num_splits(split.ref)
        if index >= num_splits:
            raise ParentNotDoneError(f"task {'.'.join(map(str, path))} of '{step}' is beyond "
                                     f"the {num_splits} splits of {split.describe()}")
        value = _item(store.load(split.index[var]), index)
        frame = ForeachFrame(split.ref.step, var, num_splits, index, value)
        stack = (*_stack_of(store, split), frame)
    elif path and parents:
        stack = _stack_of(store, parents[0])
        if plan.kind == "join-foreach":
            stack = stack[:-1]
    return LoadedInputs(plan, parents, stack)
