"""Checks of a FlowRun against its Flow that the apiserver cannot make (pure).

Owns: `check_parameters` — the run's ``spec.parameters`` against the Flow's
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

__all__ = ["check_parameters"]

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
