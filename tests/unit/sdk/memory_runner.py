"""A tiny in-memory executor of a whole flow, for SDK tests only.

Runs every step on fresh flow objects in one process, the way the runner
will on pods: linear steps inherit their parent's artifacts, foreach splits
get `ForeachFrame`s, joins wait for all their inputs (ordered by branch /
split index) and start empty. No graph, store or CLI: just the SDK hooks
(`_run_step`, `_transition`, `_foreach_stack`, `Inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kflow import FlowSpec
from kflow.flowspec import ForeachFrame, flow_steps, is_join
from kflow.inputs import EPHEMERAL_ATTRIBUTES, INTERNAL_ARTIFACTS, Inputs


@dataclass(frozen=True)
class Split:
    """An open split: its id, width, this branch's position, whether a foreach."""

    id: int
    width: int
    order: int
    foreach: bool


class MemoryRun:
    """All tasks of one in-memory run, by step name."""

    def __init__(self, flow_cls: type[FlowSpec]) -> None:
        self.flow_cls = flow_cls
        self.steps = flow_steps(flow_cls)
        self.tasks: dict[str, list[FlowSpec]] = {}
        self._waiting: dict[tuple[str, int], list[tuple[int, FlowSpec]]] = {}
        self._ids = 0

    def run(self, start: str = "start") -> MemoryRun:
        self._execute(start, [], (), ())
        return self

    def _execute(self, step: str, parents: list[FlowSpec], splits: tuple[Split, ...],
                 frames: tuple[ForeachFrame, ...]) -> None:
        flow = self.flow_cls(use_cli=False)
        join = is_join(self.steps[step])
        if parents and not join:
            for name, value in vars(parents[0]).items():
                if name not in INTERNAL_ARTIFACTS and name not in EPHEMERAL_ATTRIBUTES:
                    flow.__dict__[name] = value
        flow._foreach_stack = frames
        flow._run_step(step, Inputs(parents) if join else None)
        self.tasks.setdefault(step, []).append(flow)
        if flow._transition is None:
            return
        targets, var = flow._transition
        if var is not None:
            split_id = self._new_id()
            items = list(getattr(flow, var))
            for index, item in enumerate(items):
                frame = ForeachFrame(step, var, len(items), index, item)
                self._go(targets[0], flow, (*splits, Split(split_id, len(items), index, True)),
                         (*frames, frame))
        elif len(targets) > 1:
            split_id = self._new_id()
            for order, target in enumerate(targets):
                self._go(target, flow, (*splits, Split(split_id, len(targets), order, False)),
                         frames)
        else:
            self._go(targets[0], flow, splits, frames)

    def _new_id(self) -> int:
        self._ids += 1
        return self._ids

    def _go(self, target: str, parent: FlowSpec, splits: tuple[Split, ...],
            frames: tuple[ForeachFrame, ...]) -> None:
        if not is_join(self.steps[target]):
            self._execute(target, [parent], splits, frames)
            return
        split = splits[-1]
        arrived = self._waiting.setdefault((target, split.id), [])
        arrived.append((split.order, parent))
        if len(arrived) == split.width:
            parents = [flow for _, flow in sorted(arrived, key=lambda pair: pair[0])]
            self._execute(target, parents, splits[:-1], frames[:-1] if split.foreach else frames)
