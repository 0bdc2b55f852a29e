"""Checks of a FlowRun against its Flow that the apiserver cannot make (pure).

Owns: `check_resume` — ``spec.resume.step`` names a step of the Flow (checked while
the request is to be acted on: on a new run or a failed one; the planner would
otherwise ignore an unknown step).

`check_parameters` — the run's ``spec.parameters`` against the Flow's
``spec.parameters``: an unknown name, a value that does not parse as the parameter's
type, or a required parameter without value or default. The parsing rules are the
runner's (`kflow.parameters.Parameter.parse`), so a run the operator accepts is one the
start step accepts: int and float as Python parses them, bool
``true/false/t/f/yes/no/y/n/on/off/1/0`` (any case), json with `json.loads`, str as is.

Imports only the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["check_parameters", "check_resume"]

_BOOLS: Final = frozenset({"true", "t", "yes", "y", "on", "1",
                           "false", "f", "no", "n", "off", "0"})
_EXPECTED: Final = {"int": "a whole number (e.g. 3)", "float": "a number (e.g. 0.5)",
                    "bool": "true or false", "json": "JSON (e.g. '{\"a\": 1}')"}


def _parses(kind: str, text: str) -> bool:
    try:
        if kind == "int":
            int(text.strip())
        elif kind == "float":
            float(text.strip())
        elif kind == "bool":
            return text.strip().lower() in _BOOLS
        elif kind == "json":
            json.loads(text)
    except ValueError:
        return False
    return True


def check_parameters(flow_spec: Mapping[str, Any], values: Mapping[str, Any] | None) -> str | None:
    """None if `values` (a FlowRun's spec.parameters) fit the Flow, else what is wrong."""
    declared = {str(p.get("name")): p for p in flow_spec.get("parameters") or []
                if isinstance(p, Mapping)}
    given = dict(values or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        return (f"spec.parameters: {', '.join(unknown)} "
                f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of "
                f"flow {flow_spec.get('flowName')} (its parameters: {known}); "
                "fix the name or redeploy the flow")
    for name, param in declared.items():
        kind = str(param.get("type") or "str")
        if name in given:
            text = str(given[name])
            if kind in _EXPECTED and not _parses(kind, text):
                return (f"spec.parameters.{name}: {text[:200]!r} is not {_EXPECTED[kind]} "
                        f"(parameter {name} has type {kind})")
        elif param.get("required") and "default" not in param:
            return (f"spec.parameters.{name}: parameter {name} is required and has no default; "
                    "give it a value")
    return None


def check_resume(flow_spec: Mapping[str, Any],
                 flowrun: Mapping[str, Any]) -> tuple[str, str] | None:
    """None if the run's ``resume`` can be acted on, else (condition ``Accepted``
    reason, what is wrong and what to do). (``resumeFrom`` is checked against its
    origin run when the run starts: `kflow_operator.origin`.)

    Stable over reconciles: a run failed for a bad ``resume.step`` keeps failing for it
    (its Accepted condition says so) until a new resume request replaces the step.
    """
    spec = flowrun.get("spec") or {}
    status = flowrun.get("status") or {}
    phase = status.get("phase")
    resume = spec.get("resume") or {}
    step = resume.get("step")
    attempt, handled = resume.get("attempt"), status.get("resumeAttempt") or 0
    pending = isinstance(attempt, int) and isinstance(handled, int) and attempt > handled
    rejected = any(isinstance(c, Mapping) and c.get("type") == "Accepted"
                   and c.get("reason") == "InvalidResume"
                   for c in status.get("conditions") or ())
    to_act_on = pending and phase in (None, "Failed")
    if not isinstance(step, str) or not (to_act_on or rejected):
        return None        # nothing to act on: a bump on a running or finished run does nothing
    steps = [str(s.get("name")) for s in flow_spec.get("steps") or [] if isinstance(s, Mapping)]
    if step in steps:
        return None
    return ("InvalidResume",
            f"spec.resume.step: {step} is not a step of flow {flow_spec.get('flowName')} "
            f"(its steps: {', '.join(steps)}); name one of them (bump spec.resume.attempt "
            "again, or create a new run)")
