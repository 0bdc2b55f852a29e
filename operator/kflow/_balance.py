"""Do the flow's splits and joins match? (internal; the structural rules of `kflow.lint`).

Owns: walking the graph from start with the stack of open splits, each
frame being (split step, branch taken), and judging every step by the
stacks it is reached with:

- a join (a step taking `inputs`) closes the innermost open split, and must
  be reached from every branch of it and only from it (Metaflow's
  `check_split_join_balance`: wrong number of branches, join without a
  split, join of unrelated splits);
- kflow's rule: a step where branches of a split meet IS a join (it must
  take `inputs`), and a step taking `inputs` must be where a split closes;
- the end step is reached with no split open.

A switch pushes no frame: its cases meet again in an ordinary step. One
problem is reported per split, so a split closed wrongly is not reported
again at end. Assumes the per-step and reachability rules passed (known
targets, no loops but a switch's recursion).
"""

from __future__ import annotations

from dataclasses import dataclass

from kflow.graph import FlowGraph, StepNode

Frame = tuple[str, str]          # (split step, first step of the branch)
Stack = tuple[Frame, ...]


@dataclass(frozen=True)
class Problem:
    """A structural problem at `step` (reported at its `def` line)."""

    step: str
    rule: str
    message: str
    hint: str


def reachable(graph: FlowGraph) -> set[str]:
    """Names of the steps reachable from start (start included)."""
    seen: set[str] = set()
    todo = [graph.start] if graph.start in graph else []
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(s for s in graph[name].out if s in graph)
    return seen


def arrivals(graph: FlowGraph) -> dict[str, dict[Stack, set[str]]]:
    """For each reachable step: the stacks of open splits it is reached with → from which steps."""
    found: dict[str, dict[Stack, set[str]]] = {}
    walked: set[tuple[str, Stack]] = set()
    limit = len(graph)  # more frames than steps: a loop we were told is not there

    def walk(name: str, stack: Stack, came_from: str | None) -> None:
        found.setdefault(name, {}).setdefault(stack, set())
        if came_from is not None:
            found[name][stack].add(came_from)
        if (name, stack) in walked or len(stack) > limit:
            return
        walked.add((name, stack))
        node = graph[name]
        if node.type == "end":
            return
        for child in node.out:
            if child not in graph or (child == name and node.type == "split-switch"):
                continue
            if node.type in ("split-static", "split-foreach"):
                walk(child, (*stack, (name, child)), name)
            elif node.type == "join":
                walk(child, stack[:-1], name)
            else:
                walk(child, stack, name)

    if graph.start in graph:
        walk(graph.start, (), None)
    return found


def problems(graph: FlowGraph) -> list[Problem]:
    """Every split/join problem, in topological order of the step concerned."""
    seen = arrivals(graph)
    reported: set[str] = set()   # splits already reported
    found: list[Problem] = []
    for node in graph:
        stacks = seen.get(node.name)
        if not stacks or node.name == graph.start:
            continue
        if node.type == "end":
            problem = _end(graph, node, stacks, reported)
        elif node.is_join:
            problem = _join(graph, node, stacks)
        else:
            problem = _meeting(graph, node, stacks)
        if problem is not None and not problem[1] & reported:
            found.append(problem[0])
            reported.update(problem[1])
    return found


def _end(graph: FlowGraph, node: StepNode, stacks: dict[Stack, set[str]],
         reported: set[str]) -> tuple[Problem, set[str]] | None:
    open_splits = sorted({s[-1][0] for s in stacks if s} - reported,
                         key=lambda n: graph.order.index(n))
    if not open_splits:
        return None
    split = graph[open_splits[-1]]
    return Problem(
        node.name, "end-before-join",
        f"The end step is reached before {_describe(split)} is joined.",
        f"Add a join step (def join(self, inputs)) after {_branches_phrase(split)}, and have it "
        "go to end."), {split.name}


def _join(graph: FlowGraph, node: StepNode,
          stacks: dict[Stack, set[str]]) -> tuple[Problem, set[str]] | None:
    if all(not s for s in stacks):
        return Problem(
            node.name, "join-without-split",
            f"Step '{node.name}' takes inputs, so it is a join, but no split comes before it.",
            f"Remove the inputs argument: def {node.name}(self):"), set()
    splits = {s[-1][0] for s in stacks if s}
    if any(not s for s in stacks) or len(splits) > 1 or len({s[:-1] for s in stacks}) > 1:
        return Problem(
            node.name, "join-unrelated",
            f"The join step '{node.name}' joins steps from unrelated splits ("
            f"{', '.join(sorted(splits))}): {_from_phrase(stacks)}.",
            "Each join closes one split: join the inner split first, then the outer one."), splits
    split = graph[splits.pop()]
    branches = {s[-1][1] for s in stacks}
    if branches == set(split.out):
        return None
    incoming = sorted({p for froms in stacks.values() for p in froms})
    missing = [b for b in split.out if b not in branches]
    add = f"add self.next(self.{node.name}) to " + \
        ", ".join(f"'{_branch_tail(graph, b)}'" for b in missing)
    if len(incoming) == 1 and split.type == "split-static":
        return Problem(
            node.name, "join-not-at-split",
            f"Step '{node.name}' takes inputs, so it is a join, but it is not where a split "
            f"closes: only '{incoming[0]}' leads to it.",
            f"Remove the inputs argument (def {node.name}(self):), or make it join all the "
            f"branches of '{split.name}' ({', '.join(split.out)}): {add}."), {split.name}
    n = len(branches)
    return Problem(
        node.name, "join-count",
        f"The join step '{node.name}' has {n} incoming branch{'es' if n != 1 else ''} but "
        f"closes a split of {len(split.out)} ({', '.join(split.out)}).",
        add[0].upper() + add[1:] + "."), {split.name}


def _meeting(graph: FlowGraph, node: StepNode,
             stacks: dict[Stack, set[str]]) -> tuple[Problem, set[str]] | None:
    if len(stacks) < 2:
        return None
    depth = 0
    common = min(len(s) for s in stacks)
    while depth < common and len({s[depth] for s in stacks}) == 1:
        depth += 1
    splits = {s[depth][0] for s in stacks if len(s) > depth}
    if len(splits) == 1 and all(len(s) > depth for s in stacks):
        split = graph[splits.pop()]
        branches = sorted({s[depth][1] for s in stacks}, key=split.out.index)
        return Problem(
            node.name, "join-needed",
            f"Step '{node.name}' is where the branches {', '.join(branches)} of the split at "
            f"'{split.name}' meet, so it must be a join step.",
            f"Make it take the inputs: def {node.name}(self, inputs):"), {split.name}
    return Problem(
        node.name, "join-unrelated",
        f"Step '{node.name}' is reached both from inside and from outside a split: "
        f"{_from_phrase(stacks)}.",
        "Every path into a step must come through the same open splits: join the split "
        "before the paths meet."), splits


def _describe(split: StepNode) -> str:
    if split.type == "split-foreach":
        return f"the foreach started at '{split.name}' (over '{split.foreach_var}')"
    return f"the split started at '{split.name}' ({', '.join(split.out)})"


def _branches_phrase(split: StepNode) -> str:
    if split.type == "split-foreach":
        return f"the foreach body ({', '.join(split.out)})"
    return f"the branches ({', '.join(split.out)})"


def _from_phrase(stacks: dict[Stack, set[str]]) -> str:
    parts = []
    for stack, froms in sorted(stacks.items()):
        where = f"branch {stack[-1][1]} of '{stack[-1][0]}'" if stack else "outside any split"
        parts.append(f"{', '.join(sorted(froms))} ({where})")
    return "; ".join(parts)


def _branch_tail(graph: FlowGraph, root: str) -> str:
    """The last step of a plain chain starting at `root` (where a self.next would go)."""
    name = root
    while True:
        node = graph[name]
        if node.is_split or node.is_join or len(node.out) != 1:
            return name
        nxt = node.out[0]
        if nxt not in graph or nxt == graph.end or graph[nxt].is_join \
                or len(graph[nxt].in_steps) != 1:
            return name
        name = nxt
