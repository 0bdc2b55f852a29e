"""The pure scheduling brain of kflow: `plan(flow, run, observed, now) -> Plan`.

Owns nothing itself; its modules each own one concern:

============  ================================================================
``model``     value types: TaskId, TaskResult, ObservedAttempt, actions, Plan
``flow``      FlowModel / StepModel: the Flow spec parsed into a graph
``run``       RunModel (FlowRun spec + previous status), PlannerConfig
``failures``  which retry budget a failure spends, and its reason
``tasks``     one task's state from its attempts (retries, resume generations)
``status``    formatting of the bounded status (conditions, indexes, duration)
``overhead``  the status' overhead summaries: kflow's time vs the user's code
``planner``   plan(): activation, joins, phases, actions, status, events
============  ================================================================

Pure: no kopf, kubernetes, minio, kflow.store or kflow.runner imports.
"""

from __future__ import annotations

from kflow.planning.flow import FlowModel, StepModel
from kflow.planning.model import (
    ORIGIN_ATTEMPT,
    Action,
    Event,
    ObservedAttempt,
    Plan,
    StartTask,
    StopTask,
    TaskId,
    TaskResult,
    TaskState,
)
from kflow.planning.planner import plan
from kflow.planning.run import ATTEMPTS_PER_RESUME, PlannerConfig, RunModel

__all__ = [
    "ATTEMPTS_PER_RESUME",
    "ORIGIN_ATTEMPT",
    "Action",
    "Event",
    "FlowModel",
    "ObservedAttempt",
    "Plan",
    "PlannerConfig",
    "RunModel",
    "StartTask",
    "StepModel",
    "StopTask",
    "TaskId",
    "TaskResult",
    "TaskState",
    "plan",
]
