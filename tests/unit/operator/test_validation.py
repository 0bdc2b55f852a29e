"""A FlowRun's parameters against its Flow's (what the apiserver cannot check)."""

from __future__ import annotations

from typing import Any

import pytest

from kflow_operator.validation import check_parameters

SPEC: dict[str, Any] = {"flowName": "TrainFlow", "parameters": [
    {"name": "alpha", "type": "float", "default": 0.5},
    {"name": "epochs", "type": "int", "default": 3},
    {"name": "full", "type": "bool", "default": False},
    {"name": "config", "type": "json", "default": {}},
    {"name": "mode", "type": "str", "required": True},
]}


@pytest.mark.parametrize("values", [
    {"mode": "x"},
    {"mode": "", "alpha": "0.7", "epochs": " 4 ", "full": "Yes", "config": '{"a": [1]}'},
    {"mode": "x", "full": "0"},
])
def test_values_that_fit(values: dict[str, str]) -> None:
    assert check_parameters(SPEC, values) is None


@pytest.mark.parametrize(("values", "text"), [
    ({}, "spec.parameters.mode: parameter mode is required"),
    ({"mode": "x", "epochs": "3.5"}, "'3.5' is not a whole number"),
    ({"mode": "x", "alpha": "fast"}, "'fast' is not a number"),
    ({"mode": "x", "full": "maybe"}, "'maybe' is not true or false"),
    ({"mode": "x", "config": "{"}, "'{' is not JSON"),
    ({"mode": "x", "alpah": "1"}, "alpah is not a parameter of flow TrainFlow (its "
                                  "parameters: alpha, config, epochs, full, mode)"),
])
def test_values_that_do_not(values: dict[str, str], text: str) -> None:
    problem = check_parameters(SPEC, values)
    assert problem is not None and text in problem


def test_a_flow_without_parameters_takes_none() -> None:
    assert check_parameters({"flowName": "F"}, None) is None
    assert "x is not a parameter" in (check_parameters({"flowName": "F"}, {"x": "1"}) or "")
