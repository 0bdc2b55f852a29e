"""kflow: Metaflow-style ML flows on Kubernetes.

Change ``from metaflow import ...`` to ``from kflow import ...``: the
authoring API keeps Metaflow's names. This module is the public SDK
surface; everything not listed in ``__all__`` is internal. The client API
(`Flow`, `Run`, `Step`, `Task`, `DataArtifact`, `namespace`, ...) comes from
`kflow.client`, imported on first use so a step's start stays fast.
`kflow.cluster` holds the embedded local cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kflow.current import current
from kflow.decorators import (
    batch,
    catch,
    environment,
    kubernetes,
    project,
    resources,
    retry,
    schedule,
    step,
    timeout,
    trigger_on_finish,
)
from kflow.exceptions import KflowException, install_excepthook
from kflow.flowspec import FlowSpec
from kflow.parameters import JSONType, Parameter

if TYPE_CHECKING:
    from kflow.client import (
        DataArtifact,
        Flow,
        Run,
        Step,
        Task,
        default_namespace,
        get_namespace,
        namespace,
    )

_CLIENT = frozenset({"DataArtifact", "Flow", "Run", "Step", "Task", "default_namespace",
                     "get_namespace", "namespace"})


def __getattr__(name: str) -> Any:
    if name in _CLIENT:
        import kflow.client

        return getattr(kflow.client, name)
    raise AttributeError(f"module 'kflow' has no attribute {name!r}")

__all__ = [
    "DataArtifact",
    "Flow",
    "FlowSpec",
    "JSONType",
    "KflowException",
    "Parameter",
    "Run",
    "Step",
    "Task",
    "__version__",
    "batch",
    "catch",
    "current",
    "default_namespace",
    "environment",
    "get_namespace",
    "kubernetes",
    "namespace",
    "project",
    "resources",
    "retry",
    "schedule",
    "step",
    "timeout",
    "trigger_on_finish",
]

__version__ = "0.1.0"

install_excepthook()
