"""kflow: Metaflow-style ML flows on Kubernetes.

Change ``from metaflow import ...`` to ``from kflow import ...``: the
authoring API keeps Metaflow's names. This module is the public SDK
surface; everything not listed in ``__all__`` is internal.
`kflow.cluster` holds the embedded local cluster.
"""

from __future__ import annotations

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

__all__ = [
    "FlowSpec",
    "JSONType",
    "KflowException",
    "Parameter",
    "__version__",
    "batch",
    "catch",
    "current",
    "environment",
    "kubernetes",
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
