"""Step decorators: attributes set vs unset, bare vs called, errors that explain themselves."""

from __future__ import annotations

import linecache
from typing import Any

import pytest

from kflow import batch, catch, environment, kubernetes, resources, retry, step, timeout
from kflow.decorator_base import StepDecorator
from kflow.decorators import step_decorators
from kflow.exceptions import InvalidDecoratorException, KflowException
from kflow.step_decorators import (
    BatchDecorator,
    KubernetesDecorator,
    ResourcesDecorator,
    RetryDecorator,
    TimeoutDecorator,
)


def only(func: Any) -> StepDecorator:
    [deco] = step_decorators(func)
    return deco


def test_step_sets_the_contract_attributes() -> None:
    @step
    def train(self: Any) -> None: ...

    assert train.is_step is True  # type: ignore[attr-defined]
    assert train.name == "train"  # type: ignore[attr-defined]
    assert train.decorators == []  # type: ignore[attr-defined]


def test_bare_and_called_forms_build_the_same_decorator() -> None:
    @retry
    @step
    def bare(self: Any) -> None: ...

    @retry()
    @step
    def called(self: Any) -> None: ...

    assert only(bare).attributes == only(called).attributes == {}
    assert only(bare).get("times") == 3
    assert only(bare).get("minutes_between_retries") == 2


def test_only_explicit_attributes_are_recorded() -> None:
    @kubernetes(memory=8000, image="python:3.11")
    @step
    def train(self: Any) -> None: ...

    deco = only(train)
    assert deco.name == "kubernetes"
    assert deco.attributes == {"memory": 8000, "image": "python:3.11"}
    assert deco.is_set("memory") and not deco.is_set("cpu")
    assert deco.get("cpu") is None  # unset resources stay unset
    assert deco.defaults["gpu_vendor"] == "nvidia"
    assert isinstance(deco, StepDecorator) and deco.step_name == "train"


def test_none_counts_as_unset() -> None:
    assert ResourcesDecorator({"cpu": None, "memory": 10}).attributes == {"memory": 10}


def test_decorators_are_listed_innermost_first_with_their_lines() -> None:
    @retry(times=1)
    @batch(cpu=2)
    @step
    def train(self: Any) -> None: ...

    names = [d.name for d in step_decorators(train)]
    assert names == ["batch", "retry"]
    batch_line, retry_line = (d.lineno for d in step_decorators(train))
    assert retry_line == batch_line - 1 > 0


@pytest.mark.parametrize(
    ("cls", "attrs", "expected"),
    [
        (ResourcesDecorator, {"cpu": "0.5", "memory": 1024.2, "gpu": 1, "disk": "100"},
         {"cpu": 0.5, "memory": 1025, "gpu": 1, "disk": 100}),
        (KubernetesDecorator, {"node_selector": "a=1, b=2"},
         {"node_selector": {"a": "1", "b": "2"}}),
        (KubernetesDecorator, {"node_selector": {"gpu": True}}, {"node_selector": {"gpu": "true"}}),
        (KubernetesDecorator, {"secrets": "s1,s2"}, {"secrets": ["s1", "s2"]}),
        (KubernetesDecorator, {"secrets": ["s1"]}, {"secrets": ["s1"]}),
        (KubernetesDecorator, {"gpu_vendor": "AMD", "qos": "guaranteed"},
         {"gpu_vendor": "amd", "qos": "Guaranteed"}),
        (KubernetesDecorator, {"tolerations": [{"key": "k", "operator": "Exists"}]},
         {"tolerations": [{"key": "k", "operator": "Exists"}]}),
        (KubernetesDecorator, {"persistent_volume_claims": {"data": "/data"}},
         {"persistent_volume_claims": {"data": "/data"}}),
        (KubernetesDecorator, {"use_tmpfs": "true", "port": 8080},
         {"use_tmpfs": True, "port": 8080}),
        (RetryDecorator, {"times": "2", "minutes_between_retries": 0},
         {"times": 2, "minutes_between_retries": 0}),
    ],
)
def test_values_are_normalised(cls: type[StepDecorator], attrs: dict[str, Any],
                               expected: dict[str, Any]) -> None:
    assert cls(attrs).attributes == expected


def test_batch_accepts_aws_only_attributes_and_ignores_them() -> None:
    deco = BatchDecorator({"cpu": 2, "queue": "q", "iam_role": "arn:x", "efa": 1})
    assert deco.get("cpu") == 2.0
    assert deco.ignored_attributes() == ["efa", "iam_role", "queue"]


def test_unknown_attribute_names_attribute_decorator_step_and_def_line() -> None:
    with pytest.raises(InvalidDecoratorException) as info:
        @retry(tims=2)
        @step
        def train(self: Any) -> None: ...

    err = info.value
    text = str(err)
    assert "'tims'" in text and "@retry" in text and "in step train" in text
    assert "minutes_between_retries, times" in text  # the valid ones
    assert err.file == __file__ and err.step == "train" and err.line is not None
    assert linecache.getline(__file__, err.line).strip().startswith("def train")


@pytest.mark.parametrize(
    ("cls", "attrs", "fragment"),
    [
        (RetryDecorator, {"times": -1}, "whole number >= 0"),
        (RetryDecorator, {"times": 5}, "at most 4"),
        (RetryDecorator, {"times": 1.5}, "whole number"),
        (RetryDecorator, {"minutes_between_retries": -2}, ">= 0"),
        (ResourcesDecorator, {"cpu": "lots"}, "must be a number"),
        (ResourcesDecorator, {"cpu": 0}, "greater than 0"),
        (ResourcesDecorator, {"cpu": True}, "must be a number"),
        (ResourcesDecorator, {"memory": 0}, "positive number of MB"),
        (ResourcesDecorator, {"memory": "-5"}, "positive number of MB"),
        (ResourcesDecorator, {"gpu": -1}, "whole number >= 0"),
        (KubernetesDecorator, {"gpu_vendor": "intel"}, "one of nvidia, amd"),
        (KubernetesDecorator, {"node_selector": "novalue"}, "key=value"),
        (KubernetesDecorator, {"tolerations": [{"kee": "x"}]}, "unknown keys"),
        (KubernetesDecorator, {"tolerations": "x"}, "list of toleration dicts"),
        (KubernetesDecorator, {"security_context": {"root": True}}, "unknown keys"),
        (KubernetesDecorator, {"port": 70000}, "between 1 and 65535"),
        (KubernetesDecorator, {"tmpfs_path": "tmp"}, "absolute path"),
        (KubernetesDecorator, {"qos": "BestEffort"}, "Burstable, Guaranteed"),
        (TimeoutDecorator, {"seconds": 0}, "adds up to 0"),
        (TimeoutDecorator, {"minutes": -1}, ">= 0"),
    ],
)
def test_bad_values_are_rejected_with_the_reason(cls: type[StepDecorator],
                                                 attrs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidDecoratorException, match=fragment) as info:
        cls(attrs)
    assert f"@{cls.name}" in str(info.value)


def test_retry_allows_metaflows_cap() -> None:
    assert RetryDecorator({"times": 4}).get("times") == 4
    assert RetryDecorator({"times": 0}).get("times") == 0


def test_timeout_sums_its_parts() -> None:
    deco = TimeoutDecorator({"hours": 1, "minutes": 2, "seconds": 3})
    assert deco.total_seconds() == 3723
    assert TimeoutDecorator().attributes == {}  # bare @timeout: no explicit value, no error


def test_catch_and_environment() -> None:
    @catch(var="failure", print_exception=False)
    @environment(vars={"A": 1, "B": "x"})
    @step
    def train(self: Any) -> None: ...

    env, caught = step_decorators(train)
    assert env.attributes == {"vars": {"A": "1", "B": "x"}}
    assert caught.attributes == {"var": "failure", "print_exception": False}
    with pytest.raises(InvalidDecoratorException, match="valid attribute name"):
        catch(var="not valid")(step(lambda self: None))
    with pytest.raises(InvalidDecoratorException, match="environment variable name"):
        environment(vars={"1BAD": "x"})(step(lambda self: None))


def test_step_decorator_below_step_is_rejected() -> None:
    with pytest.raises(InvalidDecoratorException, match="placed above @step") as info:
        @step
        @retry
        def train(self: Any) -> None: ...
    assert "def train" in str(info.value)
    assert "@retry(times=2)\n    @step" in str(info.value)  # the hint shows the right order


def test_step_decorator_on_a_plain_method_is_rejected() -> None:
    with pytest.raises(InvalidDecoratorException, match="not a step"):
        @resources(cpu=1)
        def helper(self: Any) -> None: ...


def test_step_decorator_on_a_class_is_rejected() -> None:
    with pytest.raises(InvalidDecoratorException, match="step decorator"):
        @retry
        class NotAStep:
            pass


def test_positional_attributes_are_rejected() -> None:
    with pytest.raises(InvalidDecoratorException, match="keyword attributes only"):
        retry(3)  # type: ignore[call-overload]


def test_same_decorator_twice_is_rejected() -> None:
    with pytest.raises(InvalidDecoratorException, match="appears twice") as info:
        @retry(times=1)
        @retry(times=2)
        @step
        def train(self: Any) -> None: ...
    assert info.value.step == "train"


def test_batch_with_kubernetes_is_rejected() -> None:
    with pytest.raises(InvalidDecoratorException, match="@batch and @kubernetes"):
        @kubernetes
        @batch
        @step
        def train(self: Any) -> None: ...


def test_resources_combines_with_either_compute_decorator() -> None:
    @resources(memory=1)
    @batch
    @step
    def a(self: Any) -> None: ...

    @timeout(minutes=5)
    @resources(memory=1)
    @kubernetes
    @step
    def b(self: Any) -> None: ...

    assert [d.name for d in step_decorators(b)] == ["kubernetes", "resources", "timeout"]


def test_errors_are_kflow_exceptions() -> None:
    assert issubclass(InvalidDecoratorException, KflowException)
