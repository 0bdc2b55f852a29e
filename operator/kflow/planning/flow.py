"""The Flow's graph as the planner sees it, parsed from `Flow.spec` (pure).

Owns: `StepModel` (one step's type, transitions, retry/catch settings and the
derived in_steps, foreach depth, enclosing splits and matching join) and
`FlowModel` (the steps in topological order). Parsing follows docs/api.md
("Flow.spec", "Steps"); the graph walk mirrors `kflow.graph._traverse`
(Metaflow's `_traverse_graph`): static and foreach splits push themselves on
the stack of open splits, a join pops the innermost one and becomes its
matching join, a switch pushes nothing (its branches meet without a join).

Must not import: kopf, kubernetes, minio, kflow.store, kflow.runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kflow.api_types import StepType

__all__ = ["FlowModel", "StepModel"]


@dataclass(frozen=True)
class StepModel:
    """One step of the graph, with what the planner derives from the whole graph."""

    name: str
    type: StepType
    next: tuple[str, ...] = ()
    switch_cases: tuple[tuple[str, str], ...] = ()   # (value, step), as written
    retry_times: int = 0
    minutes_between_retries: float = 0.0
    catch: bool = False
    timeout_seconds: int | None = None
    # derived from the graph
    in_steps: tuple[str, ...] = ()                   # sorted by topological position
    split_parents: tuple[str, ...] = ()              # open static/foreach splits, outermost first
    matching_join: str | None = None                 # static/foreach split: the join closing it
    depth: int = 0                                   # enclosing foreaches = task path length
    position: int = 0                                # index in topological order

    @property
    def is_join(self) -> bool:
        """True for a join step (it takes `inputs`)."""
        return self.type is StepType.JOIN

    @property
    def closes(self) -> str | None:
        """For a join: the split it closes (the innermost open split)."""
        return self.split_parents[-1] if self.is_join and self.split_parents else None


@dataclass(frozen=True)
class FlowModel:
    """A Flow's graph: steps in topological order, plus the pinned version."""

    steps: Mapping[str, StepModel]
    order: tuple[str, ...]
    start: str
    end: str
    generation: int = 0
    code_sha256: str | None = None
    branch_heads: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """static split → {step inside it: the branch head (a `next` of the split)}."""

    def __getitem__(self, name: str) -> StepModel:
        return self.steps[name]

    def __contains__(self, name: object) -> bool:
        return name in self.steps

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], generation: int = 0) -> FlowModel:
        """Parse a `Flow.spec` dict; raises ValueError for a graph the planner cannot run."""
        raw = spec.get("steps") or []
        if not isinstance(raw, list) or not raw:
            raise ValueError("spec.steps: the flow has no steps")
        start, end = str(spec.get("start", "start")), str(spec.get("end", "end"))
        parsed: dict[str, StepModel] = {}
        written: list[str] = []
        for item in raw:
            step = _parse_step(item)
            if step.name in parsed:
                raise ValueError(f"spec.steps: step {step.name} appears twice")
            parsed[step.name] = step
            written.append(step.name)
        for name in (start, end):
            if name not in parsed:
                raise ValueError(f"spec.start/end: {name} is not a step of this flow")
        for step in parsed.values():
            for child in step.next:
                if child not in parsed:
                    raise ValueError(f"step {step.name}: next step {child} is not a step")
        order = _topological_order(parsed, start, end, written)
        position = {name: i for i, name in enumerate(order)}
        in_steps: dict[str, set[str]] = {name: set() for name in parsed}
        split_parents: dict[str, tuple[str, ...]] = {}
        matching: dict[str, str] = {}
        walked: set[tuple[str, tuple[str, ...]]] = set()
        todo: list[tuple[str, tuple[str, ...]]] = [(start, ())]
        while todo:
            name, parents = todo.pop()
            if (name, parents) in walked:
                continue
            walked.add((name, parents))
            step = parsed[name]
            if step.type in (StepType.SPLIT_STATIC, StepType.SPLIT_FOREACH):
                split_parents.setdefault(name, parents)
                parents = (*parents, name)
            elif step.type is StepType.JOIN and parents:
                matching.setdefault(parents[-1], name)
                split_parents.setdefault(name, parents)
                parents = parents[:-1]
            else:
                split_parents.setdefault(name, parents)
            for child in step.next:
                if child == name:
                    continue   # a recursive switch's self-loop
                in_steps[child].add(name)
                if position[child] > position[name]:
                    todo.append((child, parents))
        steps: dict[str, StepModel] = {}
        for name in order:
            step = parsed[name]
            parents = split_parents.get(name, ())
            enclosing = parents[:-1] if step.type is StepType.JOIN and parents else parents
            depth = sum(1 for p in enclosing if parsed[p].type is StepType.SPLIT_FOREACH)
            steps[name] = StepModel(
                name=name, type=step.type, next=step.next, switch_cases=step.switch_cases,
                retry_times=step.retry_times,
                minutes_between_retries=step.minutes_between_retries, catch=step.catch,
                timeout_seconds=step.timeout_seconds,
                in_steps=tuple(sorted(in_steps[name], key=position.__getitem__)),
                split_parents=parents, matching_join=matching.get(name), depth=depth,
                position=position[name])
        heads: dict[str, dict[str, str]] = {}
        for name, step in steps.items():
            if step.type is StepType.SPLIT_STATIC and step.matching_join:
                heads[name] = _branch_heads(steps, step, step.matching_join)
        pinned = spec.get("codePackage") or {}
        sha = pinned.get("sha256") if isinstance(pinned, Mapping) else None
        return cls(steps=steps, order=order, start=start, end=end, generation=generation,
                   code_sha256=sha if isinstance(sha, str) else None, branch_heads=heads)


def _parse_step(item: Any) -> StepModel:
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise ValueError("spec.steps[]: every step needs a name")
    name = item["name"]
    try:
        kind = StepType(item.get("type", ""))
    except ValueError:
        raise ValueError(f"step {name}: unknown type {item.get('type')!r}") from None
    nxt = tuple(str(s) for s in item.get("next") or ())
    switch = item.get("switch") or {}
    cases = tuple((str(c.get("value")), str(c.get("step")))
                  for c in (switch.get("cases") or ()) if isinstance(c, Mapping))
    retry = item.get("retry") or {}
    timeout = item.get("timeoutSeconds")
    return StepModel(
        name=name, type=kind, next=nxt, switch_cases=cases,
        retry_times=int(retry.get("times", 0) or 0),
        minutes_between_retries=float(retry.get("minutesBetweenRetries", 0) or 0),
        catch=bool(item.get("catch")),
        timeout_seconds=int(timeout) if isinstance(timeout, int) else None)


def _topological_order(steps: Mapping[str, StepModel], start: str, end: str,
                       written: list[str]) -> tuple[str, ...]:
    """Kahn's order (self-loops ignored), ties broken by the written order; end last."""
    rank = {name: i for i, name in enumerate(written)}
    indegree = dict.fromkeys(steps, 0)
    for step in steps.values():
        for child in set(step.next) - {step.name}:
            indegree[child] += 1
    ready = sorted((n for n, d in indegree.items() if d == 0), key=lambda n: (n != start, rank[n]))
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for child in sorted(set(steps[name].next) - {name}, key=rank.__getitem__):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
                ready.sort(key=rank.__getitem__)
    if len(order) != len(steps):
        raise ValueError("spec.steps: the graph has a cycle (only a switch may name itself)")
    order.remove(end)
    order.append(end)
    return tuple(order)


def _branch_heads(steps: Mapping[str, StepModel], split: StepModel,
                  join: str) -> dict[str, str]:
    owner: dict[str, str] = {}
    for head in split.next:
        todo = [head]
        while todo:
            name = todo.pop()
            if name == join or name in owner:
                continue
            owner[name] = head
            todo.extend(steps[name].next)
    return owner
