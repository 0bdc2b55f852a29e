"""Checking a flow's graph before it runs: every rule Metaflow's linter has, and kflow's own.

Owns: `LintError` (file, line, step, what is wrong, what to do), `check()`
which returns every error of a graph, and `ensure_valid()` which raises
them as one `InvalidGraphException`. The split/join balance rules live in
`kflow._balance`. Pure: reads the graph, the flow class's attributes and
(for line numbers of class attributes) its source.

The rules run in three stages; a stage runs only when the ones before it
found nothing, so one mistake gives one error instead of a cascade (a typo
in `self.next` would otherwise also make its intended target an orphan):

1. each step on its own: names, arguments, `self.next` syntax and targets,
   switch cases, decorator placement, parameter names;
2. loops (only a switch may go back to itself);
3. orphans (steps start does not lead to);
4. structure: splits closed by joins with the right branches, joins only
   where a split closes, no empty foreach, no switch straight into a join.

Must not import: the Kubernetes or object-store clients, `kflow.render`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from kflow import _balance, _source
from kflow.exceptions import KflowException
from kflow.flowspec import FlowSpec, flow_constants, flow_steps
from kflow.graph import FlowGraph, StepNode
from kflow.parameters import flow_parameters

__all__ = [
    "METAFLOW_RESERVED_PARAMETERS",
    "RESERVED_STEP_NAMES",
    "InvalidGraphException",
    "LintError",
    "check",
    "ensure_valid",
]

RESERVED_STEP_NAMES = frozenset({"name", "next", "input", "index", "cmd"})
# Parameter names the Metaflow CLI keeps for itself (compared with "-" and "_" alike).
METAFLOW_RESERVED_PARAMETERS = frozenset({
    "params", "with", "tag", "namespace", "obj", "tags", "decospecs", "run-id-file",
    "max-num-splits", "max-workers", "max-log-size", "user-namespace", "run-id", "task-id",
    "runner-attribute-file",
})
NO_CATCH_ON = ("split-foreach", "split-switch")  # Metaflow: @catch cannot fake these


@dataclass(frozen=True)
class LintError:
    """One problem in a flow's graph: where, what is wrong, what to do."""

    file: str
    line: int
    step: str | None
    message: str
    hint: str
    rule: str = ""          # a stable id of the rule ("join-count"); for tests and tooling

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: "
        if self.step is not None:
            where += f"step '{self.step}': "
        return f"{where}{self.message} {self.hint}".rstrip()


class InvalidGraphException(KflowException):
    """The flow's graph failed the checks; `errors` lists every problem."""

    def __init__(self, errors: Iterable[LintError]) -> None:
        self.errors = tuple(errors)
        first = self.errors[0] if self.errors else None
        super().__init__(
            f"the flow's graph has {len(self.errors)} problem(s)",
            file=first.file if first else None,
            line=first.line if first else None,
            step=first.step if first else None,
        )

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def check(graph: FlowGraph, flow_cls: type | None = None) -> list[LintError]:
    """Every problem of `graph` (empty when the flow may run).

    Parameters
    ----------
    graph:
        Built by `kflow.graph.build_graph`.
    flow_cls:
        The flow class, for the rules about its `Parameter`s and for telling
        a missing ``@step`` from a misspelt step. Optional.
    """
    ctx = _Context(graph, flow_cls)
    for stage in _STAGES:
        errors = [e for rule in stage for e in rule(ctx)]
        if errors:
            return errors
    return []


def ensure_valid(graph: FlowGraph, flow_cls: type | None = None) -> FlowGraph:
    """`graph` itself when `check` finds nothing, else raise `InvalidGraphException`."""
    errors = check(graph, flow_cls)
    if errors:
        raise InvalidGraphException(errors)
    return graph


class _Context:
    """What the rules read, and how they make an error."""

    def __init__(self, graph: FlowGraph, flow_cls: type | None) -> None:
        self.graph = graph
        self.flow_cls = flow_cls

    def error(self, rule: str, node: StepNode | None, line: int | None, message: str,
              hint: str) -> LintError:
        file = (node.file if node is not None and node.file else self.graph.file)
        return LintError(file=file, line=line or (node.lineno if node else self.graph.lineno),
                         step=node.name if node else None, message=message, hint=hint,
                         rule=rule)


Rule = Callable[[_Context], Iterator[LintError]]


# -- stage 1: each step on its own ----------------------------------------------------------------

def _basic_steps(ctx: _Context) -> Iterator[LintError]:
    for name, what in (("start", "where the flow begins"), ("end", "where it finishes")):
        if name not in ctx.graph:
            yield ctx.error(
                f"missing-{name}", None, None,
                f"The flow {ctx.graph.name} has no '{name}' step ({what}).",
                f"Add a step named {name}: @step def {name}(self): ...")


def _step_names(ctx: _Context) -> Iterator[LintError]:
    for node in ctx.graph:
        if node.name in RESERVED_STEP_NAMES:
            yield ctx.error(
                "reserved-name", node, None,
                f"'{node.name}' is a reserved word and cannot name a step.",
                f"Rename the step; reserved: {', '.join(sorted(RESERVED_STEP_NAMES))}.")
        elif not re.fullmatch(r"[a-z0-9_]+", node.name) or node.name.startswith("_"):
            yield ctx.error(
                "step-name", node, None,
                f"The step name '{node.name}' is invalid: only lowercase ASCII letters, digits "
                "and underscores are allowed, and it cannot start with '_'.",
                f"Rename it, e.g. '{_suggest_name(node.name)}'.")


def _suggest_name(name: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    return re.sub(r"[^a-z0-9_]", "_", snake).lstrip("_") or "step"


def _num_args(ctx: _Context) -> Iterator[LintError]:
    for node in ctx.graph:
        if node.num_args == 0:
            yield ctx.error("num-args", node, None, f"Step '{node.name}' has no 'self' argument.",
                            f"Write def {node.name}(self):")
        elif node.num_args > 2:
            yield ctx.error(
                "num-args", node, None,
                f"Step '{node.name}' takes {node.num_args} arguments: a step takes only 'self', "
                "a join 'self' and 'inputs'.",
                f"Write def {node.name}(self): or def {node.name}(self, inputs):")
        elif node.num_args == 2 and node.is_split:
            yield ctx.error(
                "split-and-join", node, None,
                f"Step '{node.name}' is both a join (it takes inputs) and a split (it goes to "
                f"{_names(node.out)}).",
                "Split and join in separate steps: add a step after the join that does the "
                "split.")
        elif node.num_args == 2 and node.type in ("start", "end"):
            yield ctx.error(
                f"{node.type}-is-join", node, None,
                f"The {node.type} step cannot be a join (it takes inputs).",
                "Add a join step before end and make it go to end." if node.type == "end"
                else "Remove the inputs argument: def start(self):")


def _transitions_syntax(ctx: _Context) -> Iterator[LintError]:
    for node in ctx.graph:
        calls = node.next_calls
        if node.type == "end":
            if calls:
                yield ctx.error("end-has-next", node, calls[0],
                                "The end step must not call self.next(): the flow stops there.",
                                "Remove the self.next(...) call from end.")
        elif len(calls) > 1:
            yield ctx.error(
                "multiple-next", node, calls[1],
                f"Step '{node.name}' calls self.next() {len(calls)} times (lines "
                f"{', '.join(map(str, calls))}); the graph is read from the code, so a step has "
                "exactly one self.next() as its last statement.",
                "To choose the next step at run time use a switch: "
                "self.next({'a': self.a, 'b': self.b}, condition='attribute').")
        elif not calls:
            yield ctx.error(
                "missing-next", node, None,
                f"Step '{node.name}' has no self.next() transition to the next step.",
                "Add self.next(self.<next step>) as the last line of the step.")
        elif node.next_lineno is None:
            yield ctx.error(
                "next-not-last", node, calls[0],
                f"In step '{node.name}', self.next() is not the last statement of the step "
                "(it is inside a block or followed by code).",
                "Move self.next(...) to the end of the step body, outside any if/for/with/try.")
        elif node.next_error is not None:
            yield ctx.error("invalid-transition", node, node.next_lineno,
                            f"Step '{node.name}' has an invalid self.next(): {node.next_error}.",
                            f"Use one of: {_source.SUPPORTED_FORMS}.")


def _unknown_transitions(ctx: _Context) -> Iterator[LintError]:
    steps = list(ctx.graph.steps)
    for node in ctx.graph:
        if node.next_error is not None or node.type == "end":
            continue
        for target in node.out:
            if target in ctx.graph or target in ("start", "end"):
                continue  # a missing start or end is reported once, by _basic_steps
            member = getattr(ctx.flow_cls, target, None) if ctx.flow_cls else None
            if callable(member):
                hint = f"'{target}' is a method but not a step: decorate it with @step."
            else:
                close = difflib.get_close_matches(target, steps, n=1)
                hint = (f"Did you mean '{close[0]}'? " if close else "") + \
                    f"Steps: {_names(steps)}."
            yield ctx.error("unknown-transition", node, node.next_lineno,
                            f"Step '{node.name}' goes to '{target}', which is not a step.", hint)


def _start_in_degree(ctx: _Context) -> Iterator[LintError]:
    for node in ctx.graph:
        if "start" in node.out and "start" in ctx.graph and node.type != "end":
            yield ctx.error("start-has-incoming", node, node.next_lineno,
                            f"Step '{node.name}' goes back to start; nothing may lead to start.",
                            "Go to another step; to repeat work, use a switch that goes back "
                            "to itself.")


def _switch_splits(ctx: _Context) -> Iterator[LintError]:
    for node in ctx.graph:
        if node.type != "split-switch" or node.next_error is not None:
            continue
        if len(node.switch_cases) < 2:
            yield ctx.error(
                "switch-cases", node, node.next_lineno,
                f"The switch in step '{node.name}' has {len(node.switch_cases)} case(s); a "
                "switch needs at least 2.",
                f"Add cases, or use a plain transition: self.next(self.{_first(node.out)}).")
        if node.switch_var is None:
            yield ctx.error(
                "switch-condition", node, node.next_lineno,
                f"The switch in step '{node.name}' has no condition.",
                "Name the attribute whose value picks the case: "
                "self.next({...}, condition='attribute').")


def _decorator_placement(ctx: _Context) -> Iterator[LintError]:
    for node in ctx.graph:
        catch = node.decorator("catch")
        if catch is not None and node.type in NO_CATCH_ON:
            kind = "a foreach split" if node.type == "split-foreach" else "a switch"
            yield ctx.error(
                "catch-placement", node, catch.lineno or node.lineno,
                f"@catch is not allowed on step '{node.name}' because it is {kind}: after a "
                "caught failure there is nothing to "
                + ("iterate over." if node.type == "split-foreach" else "choose a case with."),
                "Move the work that may fail (and @catch) into a step before this one.")


def _parameter_names(ctx: _Context) -> Iterator[LintError]:
    """Parameters named like a step, a FlowSpec attribute or a CLI option, or twice."""
    if ctx.flow_cls is None:
        return
    assignments = _source.class_assignments(ctx.flow_cls)
    params = _parameters(ctx.flow_cls, assignments)
    steps = set(ctx.graph.steps) | set(flow_steps(ctx.flow_cls))
    reserved = RESERVED_STEP_NAMES | _flowspec_attributes()
    reserved_cli = {_norm(r) for r in METAFLOW_RESERVED_PARAMETERS}
    seen: dict[str, str] = {}
    for attr, name in params.items():
        where = assignments.get(attr)
        file, line = (where.file, where.line) if where else (ctx.graph.file, ctx.graph.lineno)
        found: list[tuple[str, str, str]] = []
        if attr in steps or name in steps:
            found.append(("parameter-step-clash",
                          f"The parameter '{attr}' has the same name as a step.",
                          "Rename the parameter or the step."))
        if attr in reserved or _norm(name) in reserved_cli:
            found.append(("parameter-reserved", f"The parameter name '{attr}' is reserved.",
                          "Choose another name; reserved: the FlowSpec attributes "
                          f"({', '.join(sorted(reserved))}) and the command line's options "
                          f"({', '.join(sorted(METAFLOW_RESERVED_PARAMETERS))})."))
        if _norm(name) in seen:
            found.append(("parameter-duplicate",
                          f"The parameter name '{name}' is used twice (by '{seen[_norm(name)]}' "
                          f"and '{attr}'); names ignore case.",
                          "Give each parameter its own name."))
        seen[_norm(name)] = attr
        yield from (LintError(file, line, None, msg, hint, rule) for rule, msg, hint in found)


def _read_only_artifacts(ctx: _Context) -> Iterator[LintError]:
    """Steps assigning a Parameter, a class constant or a step's name on self."""
    params = _parameters(ctx.flow_cls, _source.class_assignments(ctx.flow_cls)) \
        if ctx.flow_cls else {}
    constants = set(flow_constants(ctx.flow_cls)) if ctx.flow_cls else set()
    for node in ctx.graph:
        for name, line in node.artifacts:
            if name in params:
                yield ctx.error(
                    "parameter-artifact-clash", node, line,
                    f"Step '{node.name}' assigns self.{name}, but '{name}' is a Parameter, and "
                    "parameters are read-only in steps.",
                    f"Store the value under another name, e.g. self.{name}_value.")
            elif name in constants:
                yield ctx.error(
                    "constant-artifact-clash", node, line,
                    f"Step '{node.name}' assigns self.{name}, but '{name}' is a constant (a "
                    "class attribute of the flow), and constants are read-only in steps.",
                    "Store the value under another name.")
            elif name in ctx.graph.steps:
                yield ctx.error(
                    "artifact-step-clash", node, line,
                    f"Step '{node.name}' assigns self.{name}, which is the name of a step.",
                    "Rename the artifact.")


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _parameters(flow_cls: type,
                assignments: dict[str, _source.ClassAssignment]) -> dict[str, str]:
    """Attribute → parameter name, over the class and its bases (source order)."""
    found = {attr: param.name for attr, param in flow_parameters(flow_cls)}
    # `x = Parameter(...)` followed by `def x` in the same class body: the step hides the
    # parameter from the class, so only the source shows it.
    for attr, where in assignments.items():
        if where.is_parameter and attr not in found:
            found[attr] = attr
    return found


def _flowspec_attributes() -> frozenset[str]:
    return frozenset(a for a in dir(FlowSpec) if not a.startswith("_"))


# -- stages 2 and 3: loops, reachability ----------------------------------------------------------

def _cycles(ctx: _Context) -> Iterator[LintError]:
    graph, reported = ctx.graph, set()
    done: set[str] = set()

    def walk(name: str, path: list[str]) -> Iterator[LintError]:
        node = graph[name]
        for child in node.out:
            if child not in graph or (child == name and node.type == "split-switch"):
                continue
            if child in path:
                loop = [*path[path.index(child):], child]
                if (name, child) not in reported:
                    reported.add((name, child))
                    yield ctx.error(
                        "cycle", node, node.next_lineno,
                        f"There is a loop in the flow: {' -> '.join(loop)}.",
                        "Only a switch may go back to itself (recursion); fix the self.next() "
                        "transitions to break the loop.")
            elif child not in done:
                yield from walk(child, [*path, child])
        done.add(name)

    for node in graph:
        if node.name not in done:
            yield from walk(node.name, [node.name])


def _orphans(ctx: _Context) -> Iterator[LintError]:
    reachable = _balance.reachable(ctx.graph)
    for node in sorted(ctx.graph, key=lambda n: n.lineno):
        if node.name not in reachable:
            yield ctx.error(
                "orphan", node, None,
                f"Step '{node.name}' cannot be reached from start.",
                f"Add self.next(self.{node.name}) to the step that should run before it, or "
                "remove it.")


# -- stage 4: structure ---------------------------------------------------------------------------

def _split_join_balance(ctx: _Context) -> Iterator[LintError]:
    for problem in _balance.problems(ctx.graph):
        node = ctx.graph[problem.step]
        yield ctx.error(problem.rule, node, None, problem.message, problem.hint)


def _empty_foreaches(ctx: _Context) -> Iterator[LintError]:
    for node in ctx.graph:
        if node.type == "split-foreach" and node.out and ctx.graph[node.out[0]].type == "join":
            join = node.out[0]
            yield ctx.error(
                "empty-foreach", node, node.next_lineno,
                f"The foreach in step '{node.name}' goes straight into the join '{join}': there "
                "is no step to run for each item.",
                f"Add a step between them: self.next(self.<work>, foreach="
                f"'{node.foreach_var}') and have <work> go to {join}.")


def _switch_into_join(ctx: _Context) -> Iterator[LintError]:
    for node in ctx.graph:
        if node.type != "split-switch":
            continue
        for case, target in node.switch_cases:
            if target in ctx.graph and ctx.graph[target].type == "join":
                yield ctx.error(
                    "switch-into-join", node, node.next_lineno,
                    f"Case {case!r} of the switch in step '{node.name}' goes straight into the "
                    f"join '{target}'; a conditional path cannot lead directly to a join.",
                    f"Add an unconditional step on that path: {case!r}: self.<step>, and have "
                    f"<step> go to {target}.")


_STAGES: tuple[tuple[Rule, ...], ...] = (
    (_basic_steps, _step_names, _num_args, _transitions_syntax, _unknown_transitions,
     _start_in_degree, _switch_splits, _decorator_placement, _parameter_names,
     _read_only_artifacts),
    (_cycles,),
    (_orphans,),
    (_split_join_balance, _empty_foreaches, _switch_into_join),
)


def _names(names: Iterable[str]) -> str:
    return ", ".join(names)


def _first(names: tuple[str, ...]) -> str:
    return names[0] if names else "<step>"
