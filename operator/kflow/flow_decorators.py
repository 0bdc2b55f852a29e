"""Flow decorators: ``@schedule``, ``@project``, ``@trigger_on_finish`` (pure).

Owns: their attributes and checks, and the small derived values the
manifest needs: `ScheduleDecorator.cron_expression()` (5-field cron),
`ProjectDecorator.resolve_branch()` / `project_flow_name()` (Metaflow's
``user.<name>`` / ``test.<branch>`` / ``prod`` rules) and
`TriggerOnFinishDecorator.flows` (upstream flow names). Deploy-time values
(callables) are not supported: they are rejected with a clear error.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from kflow import _attributes as check
from kflow.cron import ALIASES, Cron
from kflow.decorator_base import Attr, FlowDecorator

__all__ = [
    "FLOW_DECORATORS",
    "ProjectDecorator",
    "ScheduleDecorator",
    "TriggerOnFinishDecorator",
    "UpstreamFlow",
    "project_name_error",
]

# ---------------------------------------------------------------------------------- schedule

_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")


def _cron(value: Any) -> str:
    """A 5-field cron line (a 6-field EventBridge line as Metaflow takes is cut to 5)."""
    line = check.text(value)
    if line in ALIASES:
        return line
    fields = line.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            "must be a cron line of 5 fields 'minute hour day-of-month month day-of-week', "
            "e.g. '0 6 * * 1-5'"
        )
    # EventBridge's '?' ("no specific value") is '*' for Kubernetes CronJobs.
    line = " ".join(f.replace("?", "*") for f in fields[:5])
    Cron.parse(line)            # CronError (a ValueError) says what to write instead
    return line


@cache
def _known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: Any) -> str:
    name = check.text(value)
    known = _known_timezones()
    if known and name not in known and name != "UTC":
        raise ValueError("must be an IANA time zone name, e.g. 'Europe/Berlin' or 'UTC'")
    return name


def _deadline(value: Any) -> int:
    seconds = check.non_negative_int(value)
    if seconds < 1:
        raise ValueError("must be at least 1 second (leave it out to start a late run "
                         "however late)")
    return seconds


def _history_limit(value: Any) -> int:
    count = check.non_negative_int(value)
    if count > 1000:
        raise ValueError("must be at most 1000")
    return count


class ScheduleDecorator(FlowDecorator):
    """``@schedule``: run the deployed flow on a timetable (daily by default).

    kflow's extensions (a Kubernetes CronJob's settings): `concurrency_policy` ('Allow',
    'Forbid', 'Replace'), `starting_deadline_seconds`, `successful_runs_history_limit`,
    `failed_runs_history_limit`; unset ones are left to the operator's defaults (Allow,
    no deadline, 3, 1).
    """

    name = "schedule"
    ATTRIBUTES: ClassVar[Mapping[str, Attr]] = {
        "hourly": Attr(False, check.boolean),
        "daily": Attr(True, check.boolean),
        "weekly": Attr(False, check.boolean),
        "cron": Attr(None, _cron),
        "timezone": Attr(None, _timezone),
        "concurrency_policy": Attr(None, check.choice("Allow", "Forbid", "Replace")),
        "starting_deadline_seconds": Attr(None, _deadline),
        "successful_runs_history_limit": Attr(None, _history_limit),
        "failed_runs_history_limit": Attr(None, _history_limit),
    }
    SPEC_FIELDS: ClassVar[Mapping[str, str]] = {
        "concurrency_policy": "concurrencyPolicy",
        "starting_deadline_seconds": "startingDeadlineSeconds",
        "successful_runs_history_limit": "successfulRunsHistoryLimit",
        "failed_runs_history_limit": "failedRunsHistoryLimit",
    }
    """The kflow extensions' keys in the Flow's ``spec.schedule``."""

    def _check(self) -> None:
        if not (self.get("cron") or self.get("weekly") or self.get("hourly") or self.get("daily")):
            raise ValueError(
                "daily=False with no cron, hourly or weekly never runs; set one, "
                "or remove @schedule"
            )

    def cron_expression(self) -> str:
        """The 5-field cron line: cron > weekly > hourly > daily (Metaflow's precedence)."""
        cron: str | None = self.get("cron")
        if cron:
            return cron
        if self.get("weekly"):
            return "0 0 * * 0"
        if self.get("hourly"):
            return "0 * * * *"
        return "0 0 * * *"

    @property
    def timezone(self) -> str | None:
        """The IANA time zone of the schedule, None for the cluster's (UTC)."""
        value: str | None = self.get("timezone")
        return value

    def spec_options(self) -> dict[str, Any]:
        """The kflow extensions the user set, keyed as in ``spec.schedule``."""
        return {ours: self.attributes[key] for key, ours in self.SPEC_FIELDS.items()
                if self.attributes.get(key) is not None}


# ---------------------------------------------------------------------------------- project

_INVALID_NAME = re.compile(r"[^a-z0-9_]")
_MAX_NAME_LENGTH = 128


def project_name_error(name: str) -> str | None:
    """Why `name` is not a valid project or branch name (Metaflow's rule), or None."""
    if not name:
        return "must not be empty"
    if _INVALID_NAME.search(name):
        return "may contain only lowercase letters, digits and '_'"
    if len(name) > _MAX_NAME_LENGTH:
        return f"must be at most {_MAX_NAME_LENGTH} characters"
    return None


def _project_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {value!r}")
    problem = project_name_error(value)
    if problem:
        raise ValueError(problem)
    return value


class ProjectDecorator(FlowDecorator):
    """``@project(name=...)``: flows of one project share namespaces per branch."""

    name = "project"
    ATTRIBUTES: ClassVar[Mapping[str, Attr]] = {
        "name": Attr(None, _project_name),
        "branch": Attr(None, _project_name),
        "production": Attr(False, check.boolean),
    }

    def _check(self) -> None:
        if "name" not in self.attributes:
            raise ValueError("a project name is required, e.g. @project(name='fraud_model')")

    @property
    def project_name(self) -> str:
        """The project's name."""
        value: str = self.attributes["name"]
        return value

    def resolve_branch(
        self, username: str, branch: str | None = None, production: bool | None = None
    ) -> str:
        """The branch a deployment or run belongs to.

        `branch` / `production` come from the command line and override the
        decorator's. ``prod`` or ``prod.<branch>`` in production, else
        ``test.<branch>`` for a named branch, else ``user.<username>``.
        """
        branch = branch if branch is not None else self.get("branch")
        production = production if production is not None else self.get("production")
        if production:
            return f"prod.{branch}" if branch else "prod"
        if branch:
            return f"test.{branch}"
        return "user." + _INVALID_NAME.sub("_", username.lower())

    def project_flow_name(self, flow_name: str, branch: str) -> str:
        """``<project>.<branch>.<Flow>``, the flow's identity across deployments."""
        return f"{self.project_name}.{branch}.{flow_name}"


# ---------------------------------------------------------------------------------- triggers


@dataclass(frozen=True)
class UpstreamFlow:
    """A flow whose successful end starts this one; `project*` None when not given."""

    name: str
    project: str | None = None
    project_branch: str | None = None


def _upstream(value: Any) -> UpstreamFlow:
    if callable(value):
        raise ValueError("is a function; deploy-time trigger values are not supported by kflow")
    if isinstance(value, str):
        parts = value.split(".")
        if len(parts) == 1 and value.isidentifier():
            return UpstreamFlow(value)
        if len(parts) >= 3 and parts[-1].isidentifier():
            return UpstreamFlow(parts[-1], parts[0], ".".join(parts[1:-1]))
        raise ValueError(
            f"has {value!r}, which is neither a flow name nor 'project.branch.FlowName'"
        )
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"name", "project", "project_branch"})
        if unknown or not isinstance(value.get("name"), str):
            raise ValueError(
                "dicts need a 'name' and may have 'project' and 'project_branch' only, "
                f"not {dict(value)!r}"
            )
        return UpstreamFlow(value["name"], value.get("project"), value.get("project_branch"))
    raise ValueError(f"must name a flow (a string or a dict), not {value!r}")


def _one_flow(value: Any) -> Any:
    _upstream(value)
    return dict(value) if isinstance(value, Mapping) else value


def _many_flows(value: Any) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"must be a list of flow names, not {value!r}")
    return [_one_flow(item) for item in value]


class TriggerOnFinishDecorator(FlowDecorator):
    """``@trigger_on_finish(flow=...)`` or ``(flows=[...])``: start after upstream flows succeed."""

    name = "trigger_on_finish"
    ATTRIBUTES: ClassVar[Mapping[str, Attr]] = {
        "flow": Attr(None, _one_flow),
        "flows": Attr([], _many_flows),
        "options": Attr({}, check.as_is, used=False),
    }

    def _check(self) -> None:
        if "flow" in self.attributes and "flows" in self.attributes:
            raise ValueError("give either flow= or flows=, not both")
        if not self.upstreams:
            raise ValueError("name the upstream flow: flow='TrainFlow' or flows=['A', 'B']")

    @property
    def upstreams(self) -> list[UpstreamFlow]:
        """The upstream flows, with their project and branch when given."""
        items = [self.attributes["flow"]] if "flow" in self.attributes else self.get("flows")
        return [_upstream(item) for item in items]

    @property
    def flows(self) -> list[str]:
        """The upstream flows' names (their FlowSpec class names)."""
        return [upstream.name for upstream in self.upstreams]


FLOW_DECORATORS: Mapping[str, type[FlowDecorator]] = {
    cls.name: cls for cls in (ScheduleDecorator, ProjectDecorator, TriggerOnFinishDecorator)
}
"""Every flow decorator by name."""
