"""kflow's client API: read runs, their artifacts and logs — Metaflow's names.

``from kflow import Flow, namespace`` (or ``from kflow.client import ...``)::

    run = Flow("TrainFlow").latest_successful_run
    model = run.data.model
    for run in Flow("TrainFlow"):          # newest first, running and failed included
        if run.successful:
            print(run.id, run.created_at, run.parameters, run["train"].task.data.score)

Live runs come from the FlowRun resources of the configured Kubernetes namespace;
every run, also after its FlowRun was deleted, from the object store. Configuration:
`kflow.config` (``kflow configure``, or ``eval "$(kflow cluster env)"`` for the
embedded cluster). See `kflow.client.objects` for the semantics.
"""

from __future__ import annotations

from kflow.client.objects import (
    Code,
    DataArtifact,
    DataView,
    Flow,
    KflowNamespaceMismatch,
    KflowNotFound,
    Run,
    Step,
    Task,
    TaskException,
    default_namespace,
    get_namespace,
    get_source,
    namespace,
    set_source,
)
from kflow.client.source import ClientError, RunInfo, Source

__all__ = [
    "ClientError",
    "Code",
    "DataArtifact",
    "DataView",
    "Flow",
    "KflowNamespaceMismatch",
    "KflowNotFound",
    "Run",
    "RunInfo",
    "Source",
    "Step",
    "Task",
    "TaskException",
    "default_namespace",
    "get_namespace",
    "get_source",
    "namespace",
    "set_source",
]
