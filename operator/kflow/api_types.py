"""Names and values of kflow's Kubernetes API, shared by the SDK and the operator.

Owns: the CRD coordinates (group, version, kinds, plurals, short names), the label
and annotation keys kflow puts on what it creates, the enumerations that appear in
`Flow`/`FlowRun` objects (step types, parameter types, phases, failure reasons,
condition types) and the limits and name patterns of the schemas. The CRDs in
`crds/` are the source of truth; `tests/unit/test_crds.py` checks that every value
here matches them, so change both together.

Pure: imports nothing beyond the standard library (the runner image and the
operator both import it).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

# --- CRD coordinates ---------------------------------------------------------------

GROUP: Final = "kflow.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORY: Final = "kflow"

FLOW_KIND: Final = "Flow"
FLOW_PLURAL: Final = "flows"
FLOW_SINGULAR: Final = "flow"
FLOW_SHORT_NAMES: Final = ("fl",)

FLOWRUN_KIND: Final = "FlowRun"
FLOWRUN_PLURAL: Final = "flowruns"
FLOWRUN_SINGULAR: Final = "flowrun"
FLOWRUN_SHORT_NAMES: Final = ("fr",)

# --- labels and annotations ----------------------------------------------------------

LABEL_FLOW: Final = "kflow.dev/flow"        # Flow name (on FlowRuns, pods)
LABEL_RUN: Final = "kflow.dev/run"          # FlowRun name (on pods)
LABEL_STEP: Final = "kflow.dev/step"        # step name (on pods)
LABEL_TASK: Final = "kflow.dev/task"        # task id within the step (on pods)
LABEL_ATTEMPT: Final = "kflow.dev/attempt"  # attempt number, "0" first (on pods)
KFLOW_LABELS: Final = (LABEL_FLOW, LABEL_RUN, LABEL_STEP, LABEL_TASK, LABEL_ATTEMPT)
# Who started a run (on FlowRuns): the operator passes it to step pods as KFLOW_USER.
ANNOTATION_USER: Final = "kflow.dev/user"

LABEL_APP_NAME: Final = "app.kubernetes.io/name"
LABEL_APP_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_APP_VERSION: Final = "app.kubernetes.io/version"
LABEL_APP_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_APP_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_APP_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
APP_LABELS: Final = (LABEL_APP_NAME, LABEL_APP_INSTANCE, LABEL_APP_VERSION,
                     LABEL_APP_COMPONENT, LABEL_APP_PART_OF, LABEL_APP_MANAGED_BY)
PART_OF: Final = "kflow"                    # value of app.kubernetes.io/part-of

# spec.driver of a FlowRun: who runs its tasks and writes its status.
DRIVER_OPERATOR: Final = "Operator"
DRIVER_LOCAL: Final = "Local"         # a hybrid `python flow.py run --local`
# status.driver of a Local-driven FlowRun: {host, pid, heartbeatAt} (the driver writes it)
DRIVER_STATUS: Final = "driver"
MANAGED_BY: Final = "kflow"                 # value of app.kubernetes.io/managed-by
COMPONENT_STEP: Final = "step"              # app.kubernetes.io/component of step pods

ANNOTATION_SAFE_TO_EVICT: Final = "cluster-autoscaler.kubernetes.io/safe-to-evict"
ENV_TASK_READY_AT: Final = "KFLOW_TASK_READY_AT"
ENV_TASK_CREATED_AT: Final = "KFLOW_TASK_CREATED_AT"
"""In a step pod: the operator's readings (RFC 3339, ms) of when the task became runnable
and when its pod was created, which the runner records in the task's ``timing``."""
FINALIZER_STEP: Final = "kflow.dev/step"
"""On every step pod: the pod (the record of its attempt) outlives a deletion until the
operator has seen its outcome and the run no longer needs it (docs/operator.md)."""


def common_labels(*, name: str | None = None, instance: str | None = None,
                  component: str | None = None, version: str | None = None) -> dict[str, str]:
    """The `app.kubernetes.io/*` labels of an object kflow creates.

    Always `part-of: kflow` and `managed-by: kflow`; the others only when given.
    Callers add the `kflow.dev/*` selection labels themselves.
    """
    labels = {LABEL_APP_PART_OF: PART_OF, LABEL_APP_MANAGED_BY: MANAGED_BY}
    for key, value in ((LABEL_APP_NAME, name), (LABEL_APP_INSTANCE, instance),
                       (LABEL_APP_COMPONENT, component), (LABEL_APP_VERSION, version)):
        if value is not None:
            labels[key] = value
    return labels

# --- enumerations --------------------------------------------------------------------


class StepType(enum.StrEnum):
    """`Flow.spec.steps[].type`: how a step goes on."""

    START = "start"
    LINEAR = "linear"
    SPLIT_STATIC = "split-static"
    SPLIT_FOREACH = "split-foreach"
    SPLIT_SWITCH = "split-switch"
    JOIN = "join"
    END = "end"


class ParameterType(enum.StrEnum):
    """`Flow.spec.parameters[].type`: how a FlowRun's string value is parsed."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    JSON = "json"


class RunPhase(enum.StrEnum):
    """`FlowRun.status.phase` (and `Flow.status.lastRun.phase`)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def terminal(self) -> bool:
        """True for Succeeded, Failed and Stopped (a resume can still reopen Failed)."""
        return self in TERMINAL_PHASES


TERMINAL_PHASES: Final = frozenset({RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.STOPPED})


class StepPhase(enum.StrEnum):
    """`FlowRun.status.steps[].phase`."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"   # a switch branch that was not taken
    STOPPED = "Stopped"


class FailureReason(enum.StrEnum):
    """`FlowRun.status.failure.reason`: the class of a failure.

    Only the platform ones (`PLATFORM_FAILURES`) spend the infrastructure retry
    budget; the others spend the step's @retry budget or fail at once.
    """

    USER_ERROR = "UserError"
    OOM_KILLED = "OOMKilled"
    EVICTED = "Evicted"
    PREEMPTED = "Preempted"
    NODE_LOST = "NodeLost"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    UNSCHEDULABLE = "Unschedulable"
    IMAGE_ERROR = "ImageError"
    LAUNCH_ERROR = "LaunchError"
    INVALID_SPEC = "InvalidSpec"
    DRIVER_LOST = "DriverLost"      # a hybrid run's driving process stopped reporting
    INTERNAL = "Internal"


PLATFORM_FAILURES: Final = frozenset({FailureReason.EVICTED, FailureReason.PREEMPTED,
                                      FailureReason.NODE_LOST})


class ConditionType(enum.StrEnum):
    """Condition types of Flow (Accepted, Ready) and FlowRun (Accepted, Progressing, Succeeded)."""

    ACCEPTED = "Accepted"
    READY = "Ready"
    PROGRESSING = "Progressing"
    SUCCEEDED = "Succeeded"


FLOW_CONDITIONS: Final = (ConditionType.ACCEPTED, ConditionType.READY)
FLOWRUN_CONDITIONS: Final = (ConditionType.ACCEPTED, ConditionType.PROGRESSING,
                             ConditionType.SUCCEEDED)


class ConditionStatus(enum.StrEnum):
    """`status` of a condition (Kubernetes API conventions)."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


# --- limits and name patterns (as in the CRD schemas) ---------------------------------

STEP_NAME_PATTERN: Final = r"^[a-z][a-z0-9_]*$"
STEP_NAME_MAX: Final = 63                    # it is a label value
FLOW_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"   # spec.flowName, the class name
IDENTIFIER_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"  # foreach, catch var
PARAMETER_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_-]*$"
PARAMETER_NAME_MAX: Final = 128
RESOURCE_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # Flow/FlowRun names
RESOURCE_NAME_MAX: Final = 63                # they are label values
SHA256_PATTERN: Final = r"^[a-f0-9]{64}$"

MAX_STEPS: Final = 1000
MAX_NEXT: Final = 64                         # next steps of one step
MAX_SWITCH_CASES: Final = 64
MAX_PARAMETERS: Final = 128                  # Flow parameters, FlowRun parameter values
MAX_PARAMETER_VALUE: Final = 32768           # characters of one FlowRun parameter value
MAX_TAGS: Final = 50
MAX_TAG_LENGTH: Final = 500
MAX_RETRY_TIMES: Final = 4
MAX_TRIGGERS: Final = 32
MAX_DESCRIPTION: Final = 8192                # Flow spec.description (the docstring)
MAX_STEP_DOC: Final = 2048                   # steps[].doc
MAX_MAX_PARALLELISM: Final = 10000
DEFAULT_MAX_PARALLELISM: Final = 16

# Parameter names Metaflow reserves (they clash with `run` options); compared lowercased.
RESERVED_PARAMETER_NAMES: Final = frozenset({
    "params", "with", "tag", "namespace", "obj", "tags", "decospecs", "run-id-file",
    "max-num-splits", "max-workers", "max-log-size", "user-namespace", "run-id", "task-id",
    "runner-attribute-file",
})


def run_id(run_obj: Mapping[str, Any]) -> str:
    """The runner's ``--run-id``: ``<run name>-<first 8 of its uid>``.

    The uid part keeps data of a FlowRun deleted and created again under the same name
    apart in the store.
    """
    metadata = run_obj.get("metadata") or {}
    name = str(metadata.get("name") or "")
    uid = str(metadata.get("uid") or "")
    if not name or not uid:
        raise ValueError("a FlowRun without metadata.name or metadata.uid has no run id "
                         "(pass the object as read from the API server)")
    return f"{name}-{uid.replace('-', '')[:8]}"
