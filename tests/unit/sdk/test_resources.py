"""Merging @resources with @kubernetes / @batch, and the pod's resources block.

Mirrors METAFLOW.md §2.3's table with kflow's rule: a value nobody sets stays
unset (None) instead of a compute-decorator default winning the max.
"""

from __future__ import annotations

from typing import Any

import pytest

from kflow.decorator_base import StepDecorator
from kflow.resources import (
    RetryPolicy,
    StepResources,
    catch_var,
    cpu_quantity,
    environment_vars,
    retry_policy,
    step_image,
    step_resources,
    timeout_seconds,
)
from kflow.step_decorators import (
    STEP_DECORATORS,
)


def decos(*specs: tuple[str, dict[str, Any]]) -> list[StepDecorator]:
    return [STEP_DECORATORS[name](attrs) for name, attrs in specs]


K8S, BATCH, RES = "kubernetes", "batch", "resources"


@pytest.mark.parametrize(
    ("specs", "cpu", "memory", "disk", "gpu"),
    [
        ([(K8S, {})], None, None, None, None),
        ([(K8S, {}), (RES, {"memory": 1024})], None, 1024, None, None),
        ([(K8S, {}), (RES, {"memory": 16000, "cpu": 4, "gpu": 1})], 4.0, 16000, None, 1),
        ([(K8S, {"memory": 500}), (RES, {"memory": 1000})], None, 1000, None, None),
        ([(K8S, {"memory": 500}), (RES, {"cpu": 2})], 2.0, 500, None, None),
        ([(K8S, {}), (RES, {"disk": 50000})], None, None, 50000, None),
        ([(K8S, {"cpu": 8, "gpu": 2}), (RES, {"cpu": 2, "gpu": 1})], 8.0, None, None, 2),
        ([(BATCH, {}), (RES, {"memory": 1024})], None, 1024, None, None),
        ([(BATCH, {"memory": 8000}), (RES, {"memory": 1024})], None, 8000, None, None),
        ([(BATCH, {"memory": 500}), (RES, {"cpu": 2})], 2.0, 500, None, None),
        ([(BATCH, {"memory": 60000, "cpu": 1})], 1.0, 60000, None, None),
        ([(RES, {"memory": 2048})], None, 2048, None, None),
        ([], None, None, None, None),
    ],
)
def test_merge_table(specs: list[tuple[str, dict[str, Any]]], cpu: float | None,
                     memory: int | None, disk: int | None, gpu: int | None) -> None:
    merged = step_resources(decos(*specs))
    assert (merged.cpu, merged.memory_mb, merged.disk_mb, merged.gpu) == (cpu, memory, disk, gpu)


def test_shared_memory_and_vendor() -> None:
    merged = step_resources(decos((K8S, {"gpu_vendor": "amd", "gpu": 1}),
                                  (RES, {"shared_memory": 1024})))
    assert merged.shared_memory_mb == 1024 and merged.gpu_vendor == "amd"
    assert step_resources(decos((BATCH, {"gpu": 1}))).gpu_vendor == "nvidia"


@pytest.mark.parametrize(("cpu", "quantity"), [(1, "1"), (2.0, "2"), (0.5, "500m"),
                                               (1.25, "1250m"), (0.0001, "1m")])
def test_cpu_quantity(cpu: float, quantity: str) -> None:
    assert cpu_quantity(cpu) == quantity


def test_to_kubernetes_full() -> None:
    resources = StepResources(cpu=0.5, memory_mb=60000, disk_mb=10240, gpu=2)
    assert resources.to_kubernetes() == {
        "requests": {"cpu": "500m", "memory": "60000Mi", "ephemeral-storage": "10240Mi"},
        "limits": {"memory": "60000Mi", "nvidia.com/gpu": "2"},
    }


def test_to_kubernetes_unset_is_empty_and_amd_gpus() -> None:
    assert StepResources().to_kubernetes() == {"requests": {}, "limits": {}}
    assert StepResources(gpu=1, gpu_vendor="amd").to_kubernetes() == {
        "requests": {}, "limits": {"amd.com/gpu": "1"}}
    assert StepResources(gpu=0).to_kubernetes() == {"requests": {}, "limits": {}}


def test_guaranteed_qos_and_extended_resources() -> None:
    merged = step_resources(decos((K8S, {"cpu": 2, "memory": 100, "qos": "Guaranteed",
                                         "extended_resources": {"example.com/fpga": 1}})))
    assert merged.to_kubernetes() == {
        "requests": {"cpu": "2", "memory": "100Mi", "example.com/fpga": "1"},
        "limits": {"cpu": "2", "memory": "100Mi", "example.com/fpga": "1"},
    }


def test_timeout_retry_catch_environment_image() -> None:
    steps = decos(("timeout", {"minutes": 2, "seconds": 5}), ("retry", {"times": 1}),
                  ("catch", {"var": "err"}), ("environment", {"vars": {"A": 1}}),
                  (K8S, {"image": "python:3.11"}))
    assert timeout_seconds(steps) == 125
    assert retry_policy(steps) == RetryPolicy(times=1, minutes_between_retries=2)
    assert retry_policy(steps).max_attempts == 2
    assert catch_var(steps) == (True, "err")
    assert environment_vars(steps) == {"A": "1"}
    assert step_image(steps) == "python:3.11"


def test_readers_without_decorators() -> None:
    assert timeout_seconds([]) is None
    assert retry_policy([]) == RetryPolicy(times=0, minutes_between_retries=0)
    assert retry_policy(decos(("retry", {}))) == RetryPolicy(3, 2)
    assert catch_var([]) == (False, None)
    assert catch_var(decos(("catch", {}))) == (True, None)
    assert environment_vars([]) == {}
    assert step_image(decos((RES, {"cpu": 1}))) is None
