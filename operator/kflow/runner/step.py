"""Running one step on a flow object: inputs wired in, `current` set, @timeout and @catch.

Owns: `StepSpec` (what the decorators and the graph say about the step),
`make_flow` (a flow object with its parent's artifacts or a join's
`Inputs`, lazy parameters and its foreach stack), `run_step` (the call,
the ``@timeout`` deadline, the check of ``self.next`` against the graph,
``@catch`` on the last user-code attempt and its fallback attempt) and the
internal artifacts the task records (``_task_ok``, ``_success``,
``_exception``, ``_foreach_stack``). No store or file I/O here: artifacts
come in through `TaskArtifacts` and leave through `plan_persist`.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kflow.exceptions import InvalidNextException
from kflow.flowspec import FlowSpec
from kflow.graph import StepNode
from kflow.inputs import INTERNAL_ARTIFACTS, Inputs
from kflow.runner.artifacts import ArtifactReader, TaskArtifacts, attach, task_flow_class
from kflow.runner.exitcodes import TaskTerminated
from kflow.runner.guards import deadline
from kflow.runner.loading import LoadedInputs, ParentTask
from kflow.store import ArtifactRef, ExceptionInfo

__all__ = ["StepOutcome", "StepSpec", "make_flow", "run_step"]


@dataclass(frozen=True)
class StepSpec:
    """The step as the graph and its decorators describe it."""

    node: StepNode
    timeout_seconds: int | None = None
    has_catch: bool = False
    catch_var: str | None = None
    max_user_code_retries: int = 0


@dataclass
class StepOutcome:
    """How the step ended.

    `ok` is the task's outcome (True also when @catch handled `error`);
    `error` is the exception the step raised (None when it returned).
    """

    ok: bool
    error: BaseException | None = None
    caught: bool = False
    next_steps: tuple[str, ...] = ()
    foreach_var: str | None = None
    foreach_splits: int | None = None
    switch: str | None = None
    notes: list[str] = field(default_factory=list)


def _inherited(index: Mapping[str, ArtifactRef]) -> dict[str, ArtifactRef]:
    return {name: ref for name, ref in index.items() if name not in INTERNAL_ARTIFACTS}


def make_flow(flow_cls: type[FlowSpec], step: str, loaded: LoadedInputs,
              reader: ArtifactReader, parameters: Mapping[str, str],
              run_level: Sequence[str]) -> tuple[FlowSpec, Inputs | None]:
    """The flow object for the task, and a join's `Inputs` (None otherwise).

    `parameters` maps each parameter's name to its artifact's name;
    `run_level` names the artifacts every task carries, joins included
    (parameters and class constants).
    """
    cls = task_flow_class(flow_cls)
    flow = cls(use_cli=False)
    parents = loaded.parents
    inputs: Inputs | None = None
    if loaded.plan.kind.startswith("join"):
        flows = [_input_flow(cls, parent, step, reader) for parent in parents]
        inputs = Inputs(flows)
        first = parents[0].index if parents else {}
        refs = {name: first[name] for name in run_level if name in first}
        view = TaskArtifacts(refs, reader, None)
    elif parents:
        parent = parents[0]
        origin = f"{parent.describe()}, the parent of '{step}'"
        view = TaskArtifacts(_inherited(parent.index), reader, origin)
    else:
        view = TaskArtifacts({}, reader, None)
    attach(flow, view, parameters)
    if loaded.foreach_stack:
        flow._foreach_stack = loaded.foreach_stack
    return flow, inputs


def _input_flow(cls: type[FlowSpec], parent: ParentTask, join: str,
                reader: ArtifactReader) -> FlowSpec:
    flow = cls(use_cli=False)
    origin = f"{parent.describe()}, an input of join '{join}'"
    attach(flow, TaskArtifacts(_inherited(parent.index), reader, origin))
    flow.__dict__["_current_step"] = parent.ref.step  # what `inputs.<step>` matches
    return flow


def _check_transition(flow: FlowSpec, node: StepNode) -> StepOutcome:
    """The outcome of a step that returned: where it goes, checked against the graph."""
    transition = flow._transition
    if node.type == "end":
        return StepOutcome(ok=True)
    if transition is None:
        raise InvalidNextException(
            f"step '{node.name}' finished without calling self.next()",
            step=node.name, hint="End every step but the last with self.next(...).")
    targets, foreach_var = transition
    if node.type == "split-switch":
        if len(targets) != 1 or targets[0] not in node.out:
            raise InvalidNextException(
                f"step '{node.name}' chose {targets}, which is not one of its cases "
                f"{list(node.out)}", step=node.name)
        return StepOutcome(ok=True, next_steps=tuple(targets), switch=targets[0])
    if sorted(targets) != sorted(node.out) or foreach_var != node.foreach_var:
        expected = ", ".join(node.out) + (f" (foreach {node.foreach_var})"
                                          if node.foreach_var else "")
        raise InvalidNextException(
            f"step '{node.name}' went to {', '.join(targets)}"
            + (f" (foreach {foreach_var})" if foreach_var else "")
            + f", but its source says {expected}", step=node.name,
            hint="Call self.next(...) exactly as the last statement of the step says.")
    return StepOutcome(ok=True, next_steps=tuple(node.out), foreach_var=foreach_var,
                       foreach_splits=flow._foreach_num_splits if foreach_var else None)


def _caught_transition(node: StepNode) -> tuple[str, ...] | None:
    """Where a step whose failure @catch handled goes: its static next steps
    (None for a foreach or switch, whose targets only the step's code knows)."""
    if node.type in ("split-foreach", "split-switch"):
        return None
    return node.out


def run_step(flow: FlowSpec, spec: StepSpec, inputs: Inputs | None, attempt: int) -> StepOutcome:
    """Run the step (or @catch's fallback) and set the outcome's internal artifacts."""
    node = spec.node
    fallback = spec.has_catch and attempt > spec.max_user_code_retries
    error: BaseException | None = None
    outcome: StepOutcome | None = None
    if fallback:
        error = RuntimeError(
            f"step '{node.name}' failed on every attempt ({spec.max_user_code_retries + 1} "
            f"user-code attempts); this is @catch's fallback attempt, which does not run it")
    else:
        try:
            with deadline(spec.timeout_seconds, node.name):
                flow._run_step(node.name, inputs)
            outcome = _check_transition(flow, node)
        except TaskTerminated:
            raise
        except BaseException as exc:  # user code: SystemExit and KeyboardInterrupt too
            error = exc
            traceback.print_exception(exc)
    if outcome is not None:  # success
        if spec.catch_var:
            setattr(flow, spec.catch_var, None)
        flow.__dict__.update(_task_ok=True, _success=True)
        return outcome
    assert error is not None
    info = ExceptionInfo.from_exception(error)
    last = attempt >= spec.max_user_code_retries
    targets = _caught_transition(node)
    if spec.has_catch and last and targets is not None:
        if spec.catch_var:
            flow.__dict__[spec.catch_var] = info
        flow.__dict__.update(_task_ok=True, _success=False, _exception=info,
                             _transition=(list(targets), None))
        note = (f"@catch handled {info.type}: {info.message}"
                + (f" (stored in self.{spec.catch_var})" if spec.catch_var else ""))
        print(note, flush=True)
        return StepOutcome(ok=True, error=error, caught=True, next_steps=targets, notes=[note])
    notes = []
    if spec.has_catch and not last:
        notes.append(f"@catch applies on the last attempt ({spec.max_user_code_retries}); "
                     f"this was attempt {attempt}")
    elif spec.has_catch and targets is None:
        notes.append("@catch cannot continue a foreach or switch step whose self.next() "
                     "did not run")
    flow.__dict__.update(_task_ok=False, _success=False, _exception=info)
    return StepOutcome(ok=False, error=error, notes=notes)


def parameter_values(flow_cls: type[FlowSpec], explicit: Mapping[str, str],
                     environ: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """The start task's parameter values: name → (artifact name, value).

    Raises `ParameterValueException` for a missing required value or one
    that does not parse, KeyError naming an unknown parameter.
    """
    from kflow.parameters import flow_parameters

    params = flow_parameters(flow_cls)
    known = {param.name for _, param in params}
    unknown = sorted(set(explicit) - known)
    if unknown:
        raise KeyError(", ".join(unknown))
    return {param.name: (attr, param.resolve(explicit, environ)) for attr, param in params}
