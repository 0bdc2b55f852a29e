"""What a step's decorators mean for its pod (pure).

Owns: merging `@resources` with `@kubernetes` / `@batch` into one
`StepResources`, its Kubernetes ``resources`` block, and the other per-step
settings read from decorators (timeout, retries, catch, environment,
image). Functions take the step's decorator list (``func.decorators``).

The merge rule (Metaflow's, minus its #2464 surprise): where `@resources`
and the compute decorator both set a value the larger wins; a value only
one of them sets is taken; a value neither sets stays ``None`` and the
operator applies its own documented default later.

=========================================================  ====  ======  =====
decorators                                                  cpu  memory   disk
=========================================================  ====  ======  =====
``@kubernetes``                                             None  None    None
``@kubernetes`` + ``@resources(memory=1024)``              None  1024    None
``@kubernetes(memory=500)`` + ``@resources(memory=1000)``  None  1000    None
``@kubernetes(memory=500)`` + ``@resources(cpu=2)``         2     500    None
``@batch(memory=8000)`` + ``@resources(memory=1024)``      None  8000    None
=========================================================  ====  ======  =====
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kflow.decorator_base import StepDecorator
from kflow.step_decorators import MAX_RETRY_TIMES

__all__ = [
    "RetryPolicy",
    "StepResources",
    "catch_var",
    "compute_decorator",
    "cpu_quantity",
    "environment_vars",
    "retry_policy",
    "step_image",
    "step_resources",
    "timeout_seconds",
]

_COMPUTE = ("kubernetes", "batch")


def _find(decorators: Sequence[StepDecorator], name: str) -> StepDecorator | None:
    return next((deco for deco in decorators if deco.name == name), None)


def compute_decorator(decorators: Sequence[StepDecorator]) -> StepDecorator | None:
    """The step's `@kubernetes` or `@batch`, if any (never both: that is rejected earlier)."""
    return next((deco for deco in decorators if deco.name in _COMPUTE), None)


def cpu_quantity(cpu: float) -> str:
    """A Kubernetes CPU quantity: whole cores as ``"2"``, fractions in millicores ``"500m"``."""
    millis = max(round(cpu * 1000), 1)
    if millis % 1000 == 0:
        return str(millis // 1000)
    return f"{millis}m"


@dataclass(frozen=True)
class StepResources:
    """The resources a step's pod asks for; ``None`` = unset (the operator's default applies).

    Memory, disk and shared memory are in MB (Metaflow's unit, written
    ``<n>Mi`` on the pod).
    """

    cpu: float | None = None
    memory_mb: int | None = None
    disk_mb: int | None = None
    gpu: int | None = None
    gpu_vendor: str = "nvidia"
    shared_memory_mb: int | None = None
    guaranteed: bool = False  # @kubernetes(qos="Guaranteed"): every limit equals its request
    extended: tuple[tuple[str, str], ...] = ()  # @kubernetes(extended_resources=...)

    def to_kubernetes(self) -> dict[str, dict[str, str]]:
        """The container's ``resources`` block: ``{"requests": {...}, "limits": {...}}``.

        The memory limit always equals the request, so the node enforces it;
        GPUs are limits (``nvidia.com/gpu`` or ``amd.com/gpu``); with
        ``qos="Guaranteed"`` cpu and ephemeral storage get limits too.
        Shared memory is not a resource (it is a ``/dev/shm`` volume).
        """
        requests: dict[str, str] = {}
        limits: dict[str, str] = {}
        if self.cpu is not None:
            requests["cpu"] = cpu_quantity(self.cpu)
        if self.memory_mb is not None:
            requests["memory"] = limits["memory"] = f"{self.memory_mb}Mi"
        if self.disk_mb is not None:
            requests["ephemeral-storage"] = f"{self.disk_mb}Mi"
        if self.guaranteed:
            for key in ("cpu", "ephemeral-storage"):
                if key in requests:
                    limits[key] = requests[key]
        if self.gpu:
            limits[f"{self.gpu_vendor}.com/gpu"] = str(self.gpu)
        for key, value in self.extended:
            requests[key] = limits[key] = value
        return {"requests": requests, "limits": limits}


def _larger(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def step_resources(decorators: Sequence[StepDecorator]) -> StepResources:
    """Merge `@resources` with `@kubernetes` / `@batch` (larger wins; unset stays None)."""
    res = _find(decorators, "resources")
    compute = compute_decorator(decorators)

    def merged(key: str) -> Any:
        values = [
            deco.attributes.get(key)
            for deco in (res, compute)
            if deco is not None and key in deco.ATTRIBUTES
        ]
        result = None
        for value in values:
            result = _larger(result, value)
        return result

    is_k8s = compute is not None and compute.name == "kubernetes"
    return StepResources(
        cpu=merged("cpu"),
        memory_mb=merged("memory"),
        disk_mb=merged("disk"),
        gpu=merged("gpu"),
        gpu_vendor=compute.get("gpu_vendor") if compute is not None and is_k8s else "nvidia",
        shared_memory_mb=merged("shared_memory"),
        guaranteed=bool(compute is not None and is_k8s and compute.get("qos") == "Guaranteed"),
        extended=tuple(sorted((compute.get("extended_resources") or {}).items()))
        if compute is not None and is_k8s
        else (),
    )


def timeout_seconds(decorators: Sequence[StepDecorator]) -> int | None:
    """The step's ``@timeout`` in seconds, None without one."""
    deco = _find(decorators, "timeout")
    if deco is None:
        return None
    seconds = deco.get("seconds") + 60 * deco.get("minutes") + 3600 * deco.get("hours")
    return int(seconds) if seconds else None


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed task is rerun (user-code retries) and how long to wait between."""

    times: int = 0
    minutes_between_retries: float = 0

    @property
    def max_attempts(self) -> int:
        """Attempts of one task in all: the first run plus `times` retries."""
        return 1 + self.times


def retry_policy(decorators: Sequence[StepDecorator]) -> RetryPolicy:
    """The step's ``@retry`` (Metaflow defaults: 3 times, 2 minutes apart); no retries without."""
    deco = _find(decorators, "retry")
    if deco is None:
        return RetryPolicy()
    times = min(int(deco.get("times")), MAX_RETRY_TIMES)
    return RetryPolicy(times, deco.get("minutes_between_retries"))


def catch_var(decorators: Sequence[StepDecorator]) -> tuple[bool, str | None]:
    """``(has @catch, the artifact name it stores the exception in or None)``."""
    deco = _find(decorators, "catch")
    if deco is None:
        return False, None
    var: str | None = deco.get("var")
    return True, var


def environment_vars(decorators: Sequence[StepDecorator]) -> dict[str, str]:
    """The step's ``@environment(vars=...)``, as strings."""
    deco = _find(decorators, "environment")
    return dict(deco.get("vars")) if deco is not None else {}


def step_image(decorators: Sequence[StepDecorator]) -> str | None:
    """The image set on ``@kubernetes`` / ``@batch``, None for the flow's default."""
    compute = compute_decorator(decorators)
    image: str | None = compute.get("image") if compute is not None else None
    return image
