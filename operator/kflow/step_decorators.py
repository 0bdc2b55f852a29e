"""The step decorators kflow understands, with Metaflow's names and attributes (pure).

Owns: one `StepDecorator` subclass per decorator (`@resources`,
`@kubernetes`, `@batch`, `@retry`, `@catch`, `@timeout`, `@environment`),
each declaring its attributes, their checks and defaults. Resource
attributes default to ``None`` (unset): the operator applies its own
documented defaults after merging, so an unset value never wins a max.
`@batch` accepts all of Metaflow's AWS attributes so flows migrate
unchanged; kflow uses cpu, gpu, memory, shared_memory and image and
ignores the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from kflow import _attributes as check
from kflow.decorator_base import Attr, StepDecorator

__all__ = [
    "MAX_RETRY_TIMES",
    "STEP_DECORATORS",
    "BatchDecorator",
    "CatchDecorator",
    "EnvironmentDecorator",
    "KubernetesDecorator",
    "ResourcesDecorator",
    "RetryDecorator",
    "TimeoutDecorator",
]

MAX_ATTEMPTS = 6
"""Metaflow's cap on attempts of one task: user retries + 2 (the `@catch` fallback) ≤ 6."""
MAX_RETRY_TIMES = MAX_ATTEMPTS - 2

_CPU = Attr(None, check.positive_number)
_MEGABYTES = Attr(None, check.positive_megabytes)
_GPU = Attr(None, check.non_negative_int)
_IGNORED = Attr(None, check.as_is, used=False)


class ResourcesDecorator(StepDecorator):
    """``@resources``: what the step needs, whatever runs it. Memory and disk in MB."""

    name = "resources"
    ATTRIBUTES: ClassVar[Mapping[str, Attr]] = {
        "cpu": _CPU,
        "memory": _MEGABYTES,
        "gpu": _GPU,
        "disk": _MEGABYTES,
        "shared_memory": _MEGABYTES,
    }


class KubernetesDecorator(StepDecorator):
    """``@kubernetes``: pod resources and placement for the step."""

    name = "kubernetes"
    ATTRIBUTES: ClassVar[Mapping[str, Attr]] = {
        "cpu": _CPU,
        "memory": _MEGABYTES,
        "disk": _MEGABYTES,
        "gpu": _GPU,
        "gpu_vendor": Attr("nvidia", check.choice("nvidia", "amd")),
        "image": Attr(None, check.text),
        "image_pull_policy": Attr(None, check.choice("Always", "IfNotPresent", "Never")),
        "image_pull_secrets": Attr(None, check.string_list),
        "namespace": Attr(None, check.text),
        "node_selector": Attr(None, check.key_value_map),
        "tolerations": Attr(None, check.tolerations),
        "secrets": Attr(None, check.string_list),
        "service_account": Attr(None, check.text),
        "labels": Attr(None, check.string_map),
        "annotations": Attr(None, check.string_map),
        "use_tmpfs": Attr(False, check.boolean),
        "tmpfs_tempdir": Attr(True, check.boolean),
        "tmpfs_size": _MEGABYTES,
        "tmpfs_path": Attr("/metaflow_temp", check.absolute_path),
        "persistent_volume_claims": Attr(None, check.volume_claims),
        "shared_memory": _MEGABYTES,
        "port": Attr(None, check.port),
        "compute_pool": Attr(None, check.text),
        "qos": Attr("Burstable", check.choice("Burstable", "Guaranteed")),
        "extended_resources": Attr(None, check.string_map),
        "security_context": Attr(None, check.security_context),
        # Metaflow plumbing that has no meaning for kflow's pods.
        "hostname_resolution_timeout": _IGNORED,
        "executable": _IGNORED,
    }


class BatchDecorator(StepDecorator):
    """``@batch``: AWS Batch in Metaflow; kflow reads its resources and image."""

    name = "batch"
    ATTRIBUTES: ClassVar[Mapping[str, Attr]] = {
        "cpu": _CPU,
        "gpu": _GPU,
        "memory": _MEGABYTES,
        "image": Attr(None, check.text),
        "shared_memory": _MEGABYTES,
        **{
            key: _IGNORED
            for key in (
                "queue", "iam_role", "execution_role", "max_swap", "swappiness",
                "use_tmpfs", "tmpfs_tempdir", "tmpfs_size", "tmpfs_path", "inferentia",
                "trainium", "efa", "ephemeral_storage", "log_driver", "log_options",
                "host_volumes", "efs_volumes", "aws_batch_tags", "privileged",
            )
        },
    }


def _retry_times(value: object) -> int:
    times = check.non_negative_int(value)
    if times > MAX_RETRY_TIMES:
        raise ValueError(
            f"must be at most {MAX_RETRY_TIMES} (a task runs at most {MAX_ATTEMPTS} attempts, "
            "2 of them kept for @catch)"
        )
    return times


class RetryDecorator(StepDecorator):
    """``@retry``: rerun a failed task `times` more times, `minutes_between_retries` apart."""

    name = "retry"
    ATTRIBUTES: ClassVar[Mapping[str, Attr]] = {
        "times": Attr(3, _retry_times),
        "minutes_between_retries": Attr(2, check.non_negative_number),
    }


class CatchDecorator(StepDecorator):
    """``@catch``: after the last retry, store the exception in `var` and continue the flow."""

    name = "catch"
    ATTRIBUTES: ClassVar[Mapping[str, Attr]] = {
        "var": Attr(None, check.identifier),
        "print_exception": Attr(True, check.boolean),
    }


class TimeoutDecorator(StepDecorator):
    """``@timeout``: fail (retryably) a task running longer than seconds + minutes + hours."""

    name = "timeout"
    ATTRIBUTES: ClassVar[Mapping[str, Attr]] = {
        "seconds": Attr(0, check.non_negative_int),
        "minutes": Attr(0, check.non_negative_int),
        "hours": Attr(0, check.non_negative_int),
    }

    def _check(self) -> None:
        if self.attributes and self.total_seconds() == 0:
            raise ValueError(
                "the timeout adds up to 0 seconds; give a positive seconds, minutes or hours"
            )

    def total_seconds(self) -> int:
        """seconds + 60 * minutes + 3600 * hours."""
        return int(self.get("seconds") + 60 * self.get("minutes") + 3600 * self.get("hours"))


class EnvironmentDecorator(StepDecorator):
    """``@environment(vars={...})``: environment variables of the step's process."""

    name = "environment"
    ATTRIBUTES: ClassVar[Mapping[str, Attr]] = {
        "vars": Attr({}, check.env_vars),
    }


STEP_DECORATORS: Mapping[str, type[StepDecorator]] = {
    cls.name: cls
    for cls in (
        ResourcesDecorator, KubernetesDecorator, BatchDecorator, RetryDecorator,
        CatchDecorator, TimeoutDecorator, EnvironmentDecorator,
    )
}
"""Every step decorator by name (what ``--with name:k=v`` may refer to)."""
