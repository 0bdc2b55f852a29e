"""`current`: what the running task knows about itself (``from kflow import current``).

Owns: the process-wide `current` singleton and its read-only fields. The
runner fills it once per task with ``current._set(...)``; outside a running
task every field is None (``is_running_flow`` False). The `@project`
fields exist only when the flow uses `@project`, so
``"project_name" in current`` tells whether it does (as in Metaflow).
``current.trigger`` is the `kflow.trigger.Trigger` of a run started by
``@trigger_on_finish`` (``current.trigger.run`` the upstream client `Run`), None
otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kflow.trigger import Trigger

__all__ = ["Current", "TaskContext", "current"]


@dataclass(frozen=True)
class TaskContext:
    """Everything `current` reports, as one value swapped in by the runner."""

    flow_name: str | None = None
    run_id: str | None = None
    step_name: str | None = None
    task_id: str | None = None
    retry_count: int | None = None
    origin_run_id: str | None = None
    namespace: str | None = None
    username: str | None = None
    tags: tuple[str, ...] | None = None
    parameter_names: tuple[str, ...] | None = None
    is_running_flow: bool = False
    project_name: str | None = None
    branch_name: str | None = None
    project_flow_name: str | None = None
    trigger: Trigger | None = None

    @property
    def pathspec(self) -> str | None:
        """``Flow/run/step/task`` when all four are known."""
        parts = (self.flow_name, self.run_id, self.step_name, self.task_id)
        if any(part is None for part in parts):
            return None
        return "/".join(str(part) for part in parts)


_PROJECT_FIELDS = ("project_name", "branch_name", "project_flow_name")


class Current:
    """Read-only view of the running task's `TaskContext`."""

    def __init__(self) -> None:
        self._context = TaskContext()

    def _set(
        self,
        *,
        flow_name: str,
        run_id: str,
        step_name: str,
        task_id: str,
        retry_count: int = 0,
        origin_run_id: str | None = None,
        namespace: str | None = None,
        username: str | None = None,
        tags: Sequence[str] = (),
        parameter_names: Sequence[str] = (),
        is_running_flow: bool = True,
        project_name: str | None = None,
        branch_name: str | None = None,
        project_flow_name: str | None = None,
        trigger: Trigger | None = None,
    ) -> None:
        """Fill `current` for a task (the runner's hook)."""
        self._context = TaskContext(
            flow_name=flow_name,
            run_id=str(run_id),
            step_name=step_name,
            task_id=str(task_id),
            retry_count=retry_count,
            origin_run_id=origin_run_id,
            namespace=namespace,
            username=username,
            tags=tuple(tags),
            parameter_names=tuple(parameter_names),
            is_running_flow=is_running_flow,
            project_name=project_name,
            branch_name=branch_name,
            project_flow_name=project_flow_name,
            trigger=trigger,
        )

    def _update(self, **changes: Any) -> None:
        """Change some fields (e.g. ``retry_count``) of the current context."""
        self._context = replace(self._context, **changes)

    def _reset(self) -> None:
        """Back to "not in a task" (tests, end of a task)."""
        self._context = TaskContext()

    # -- fields ---------------------------------------------------------------------

    @property
    def flow_name(self) -> str | None:
        return self._context.flow_name

    @property
    def run_id(self) -> str | None:
        return self._context.run_id

    @property
    def step_name(self) -> str | None:
        return self._context.step_name

    @property
    def task_id(self) -> str | None:
        return self._context.task_id

    @property
    def retry_count(self) -> int | None:
        return self._context.retry_count

    @property
    def origin_run_id(self) -> str | None:
        return self._context.origin_run_id

    @property
    def namespace(self) -> str | None:
        return self._context.namespace

    @property
    def username(self) -> str | None:
        return self._context.username

    @property
    def tags(self) -> tuple[str, ...] | None:
        return self._context.tags

    @property
    def parameter_names(self) -> tuple[str, ...] | None:
        return self._context.parameter_names

    @property
    def is_running_flow(self) -> bool:
        return self._context.is_running_flow

    @property
    def pathspec(self) -> str | None:
        return self._context.pathspec

    @property
    def trigger(self) -> Trigger | None:
        """What started this run with ``@trigger_on_finish`` (``.run``, ``.runs``,
        ``.event``); None when the run was not triggered."""
        return self._context.trigger

    # -- @project fields: absent without @project ---------------------------------------------

    def _project_field(self, name: str) -> str:
        value: str | None = getattr(self._context, name)
        if value is None:
            raise AttributeError(f"current.{name} exists only in flows decorated with @project")
        return value

    @property
    def project_name(self) -> str:
        return self._project_field("project_name")

    @property
    def branch_name(self) -> str:
        return self._project_field("branch_name")

    @property
    def project_flow_name(self) -> str:
        return self._project_field("project_flow_name")

    def __contains__(self, name: object) -> bool:
        """``"project_name" in current``: whether the field has a value."""
        return isinstance(name, str) and getattr(self, name, None) is not None

    def __repr__(self) -> str:
        return f"<current {self.pathspec or '(not in a task)'}>"


current = Current()
"""The process-wide task context."""
