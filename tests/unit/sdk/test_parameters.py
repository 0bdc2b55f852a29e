"""Parameters: types, parsing, environment, required, read-only, names."""

from __future__ import annotations

from typing import Any

import pytest

from kflow import FlowSpec, JSONType, Parameter, step
from kflow.exceptions import InvalidParameterException, ParameterValueException
from kflow.parameters import RESERVED_PARAMETER_NAMES, flow_parameters


class ParamFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.01, help="learning rate")
    epochs = Parameter("epochs", default=10)
    debug = Parameter("debug", default=False)
    name_ = Parameter("model-name", required=True)
    config = Parameter("config", type=JSONType, default='{"layers": [1, 2]}')
    labels = Parameter("labels", default="a,b", separator=",")

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None: ...


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KFLOW_RUN_ALPHA", "KFLOW_RUN_MODEL_NAME", "KFLOW_RUN_EPOCHS"):
        monkeypatch.delenv(name, raising=False)


def test_types_are_inferred_from_the_default() -> None:
    kinds = {p.name: p.kind for _, p in flow_parameters(ParamFlow)}
    assert kinds == {"alpha": "float", "epochs": "int", "debug": "bool", "model-name": "str",
                     "config": "json", "labels": "str"}
    assert Parameter("p", default={"a": 1}).kind == "json"


def test_flow_parameters_in_source_order_with_attribute_names() -> None:
    assert [attr for attr, _ in flow_parameters(ParamFlow)] == [
        "alpha", "epochs", "debug", "name_", "config", "labels"]
    assert ParamFlow.alpha.name == "alpha"  # on the class: the Parameter itself


def test_to_spec() -> None:
    specs = [p.to_spec() for _, p in flow_parameters(ParamFlow)]
    assert specs[0] == {"name": "alpha", "type": "float", "default": 0.01, "required": False,
                        "help": "learning rate"}
    assert specs[3] == {"name": "model-name", "type": "str", "required": True}  # no empty help
    assert specs[4]["default"] == {"layers": [1, 2]}  # JSON defaults given as text are parsed
    assert specs[5] == {"name": "labels", "type": "str", "default": ["a", "b"], "required": False,
                        "separator": ","}


@pytest.mark.parametrize(
    ("param", "text", "value"),
    [
        (Parameter("s"), "hello", "hello"),
        (Parameter("i", type=int), " 42", 42),
        (Parameter("f", type=float), "1e-3", 0.001),
        (Parameter("b", type=bool), "True", True),
        (Parameter("b", type=bool), "no", False),
        (Parameter("b", type=bool), "0", False),
        (Parameter("j", type=JSONType), '{"a": [1]}', {"a": [1]}),
        (Parameter("l", separator=":"), "x:y", ["x", "y"]),
    ],
)
def test_parse(param: Parameter, text: str, value: Any) -> None:
    assert param.parse(text) == value


@pytest.mark.parametrize(
    ("param", "text", "expected"),
    [
        (Parameter("epochs", type=int), "ten", "a whole number"),
        (Parameter("alpha", type=float), "x", "a number"),
        (Parameter("debug", type=bool), "maybe", "true or false"),
        (Parameter("cfg", type=JSONType), "{bad", "JSON"),
    ],
)
def test_parse_errors_name_the_parameter_and_type(param: Parameter, text: str,
                                                  expected: str) -> None:
    with pytest.raises(ParameterValueException) as info:
        param.parse(text)
    message = str(info.value)
    assert f"'{param.name}'" in message and expected in message and repr(text) in message
    assert f"KFLOW_RUN_{param.name.upper()}" in message


def test_values_default_env_and_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFLOW_RUN_MODEL_NAME", "resnet")
    monkeypatch.setenv("KFLOW_RUN_EPOCHS", "3")
    flow = ParamFlow(use_cli=False)
    assert flow.alpha == 0.01
    assert flow.epochs == 3
    assert flow.name_ == "resnet"
    assert flow.config == {"layers": [1, 2]}
    assert flow.labels == ["a", "b"]
    assert ParamFlow.alpha.resolve({"alpha": "0.5"}, {}) == 0.5
    assert ParamFlow.alpha.resolve({"alpha": 2}, {"KFLOW_RUN_ALPHA": "9"}) == 2.0


def test_env_var_name() -> None:
    assert Parameter("model-name").env_var == "KFLOW_RUN_MODEL_NAME"


def test_required_without_value_fails_clearly() -> None:
    flow = ParamFlow(use_cli=False)
    with pytest.raises(ParameterValueException, match="'model-name' is required") as info:
        _ = flow.name_
    assert "--model-name" in str(info.value) and "KFLOW_RUN_MODEL_NAME" in str(info.value)


def test_parameters_are_read_only() -> None:
    flow = ParamFlow(use_cli=False)
    with pytest.raises(AttributeError, match="read-only"):
        flow.alpha = 1.0


@pytest.mark.parametrize("name", sorted(RESERVED_PARAMETER_NAMES))
def test_reserved_names(name: str) -> None:
    with pytest.raises(InvalidParameterException, match="reserved") as info:
        Parameter(name)
    assert info.value.file == __file__ and info.value.line


def test_reserved_names_are_metaflows_list() -> None:
    assert {"params", "with", "tag", "namespace", "obj", "tags", "decospecs", "run-id-file",
            "max-num-splits", "max-workers", "max-log-size", "user-namespace", "run-id",
            "task-id", "runner-attribute-file"} == RESERVED_PARAMETER_NAMES


def test_case_insensitive_duplicates_are_rejected() -> None:
    with pytest.raises(InvalidParameterException, match="already used") as info:
        class Dup(FlowSpec):
            a = Parameter("alpha")
            b = Parameter("ALPHA")
    assert info.value.file == __file__


def test_parameter_named_like_a_step_is_rejected() -> None:
    with pytest.raises(InvalidParameterException, match="name of step 'train'"):
        class Clash(FlowSpec):
            lr = Parameter("train")

            @step
            def train(self) -> None: ...


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"default": 1, "type": list}, "unsupported type"),
        ({"default": object()}, "unsupported type"),
        ({"default": "x", "type": int}, "default of parameter 'p'"),
        ({"default": 1.5, "type": int}, "whole number"),
        ({"default": lambda ctx: 1}, "Deploy-time"),
        ({"type": int, "separator": ","}, "separator"),
    ],
)
def test_bad_definitions(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidParameterException, match=fragment):
        Parameter("p", **kwargs)


@pytest.mark.parametrize("name", ["", "has space", "1abc", 3])
def test_bad_names(name: Any) -> None:
    with pytest.raises(InvalidParameterException, match="not valid"):
        Parameter(name)


def test_coercion_of_typed_defaults() -> None:
    assert Parameter("f", type=float, default=1).default == 1.0
    assert Parameter("b", type=bool, default="true").default is True
    assert Parameter("i", type=int, default="7").default == 7
    with pytest.raises(InvalidParameterException):
        Parameter("i", type=int, default=True)
    with pytest.raises(InvalidParameterException):
        Parameter("j", type=JSONType, default={1, 2})


def test_inherited_parameters_and_override() -> None:
    class Base(FlowSpec):
        a = Parameter("a", default=1)
        b = Parameter("b", default=2)

    class Child(Base):
        b = Parameter("b", default=3)
        c = Parameter("c", default="x")

    assert [(attr, p.default) for attr, p in flow_parameters(Child)] == [
        ("a", 1), ("b", 3), ("c", "x")]
