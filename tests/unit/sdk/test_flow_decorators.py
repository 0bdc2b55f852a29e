"""Flow decorators: @schedule, @project, @trigger_on_finish on FlowSpec subclasses."""

from __future__ import annotations

from typing import Any

import pytest

from kflow import FlowSpec, project, schedule, step, trigger_on_finish
from kflow.exceptions import InvalidDecoratorException
from kflow.flow_decorators import (
    ProjectDecorator,
    ScheduleDecorator,
    TriggerOnFinishDecorator,
    UpstreamFlow,
)


@pytest.mark.parametrize(
    ("attrs", "cron"),
    [
        ({}, "0 0 * * *"),
        ({"hourly": True}, "0 * * * *"),
        ({"weekly": True, "hourly": True}, "0 0 * * 0"),
        ({"cron": "*/5 * * * *", "weekly": True}, "*/5 * * * *"),
        ({"cron": "0 10 ? * MON-FRI *"}, "0 10 * * MON-FRI"),  # EventBridge form, cut to 5
        ({"cron": "@hourly"}, "@hourly"),
        ({"daily": False, "hourly": True}, "0 * * * *"),
    ],
)
def test_schedule_cron_precedence(attrs: dict[str, Any], cron: str) -> None:
    assert ScheduleDecorator(attrs).cron_expression() == cron


def test_schedule_timezone_and_bad_values() -> None:
    assert ScheduleDecorator({"timezone": "Europe/Berlin"}).timezone == "Europe/Berlin"
    assert ScheduleDecorator().timezone is None
    with pytest.raises(InvalidDecoratorException, match="IANA"):
        ScheduleDecorator({"timezone": "Mars/Olympus"})
    with pytest.raises(InvalidDecoratorException, match="5 fields"):
        ScheduleDecorator({"cron": "every day"})
    with pytest.raises(InvalidDecoratorException, match="never runs"):
        ScheduleDecorator({"daily": False})


def test_flow_decorators_land_in_flow_decorators_by_name() -> None:
    @trigger_on_finish(flow="UpstreamFlow")
    @project(name="fraud_model")
    @schedule
    class DecoratedFlow(FlowSpec):
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None: ...

    decos = DecoratedFlow._flow_decorators
    assert sorted(decos) == ["project", "schedule", "trigger_on_finish"]
    assert decos["schedule"].attributes == {}
    assert decos["project"].attributes == {"name": "fraud_model"}
    assert decos["trigger_on_finish"].flows == ["UpstreamFlow"]  # type: ignore[attr-defined]
    assert decos["schedule"].lineno > 0
    assert FlowSpec._flow_decorators == {}


def test_flow_decorators_are_inherited_per_class() -> None:
    @schedule(hourly=True)
    class Base(FlowSpec):
        pass

    @project(name="p")
    class Child(Base):
        pass

    @schedule(weekly=True)  # overriding an inherited one is fine
    class Other(Base):
        pass

    assert sorted(Child._flow_decorators) == ["project", "schedule"]
    assert sorted(Base._flow_decorators) == ["schedule"]
    assert Other._flow_decorators["schedule"].cron_expression() == "0 0 * * 0"  # type: ignore[attr-defined]


def test_flow_decorator_twice_is_rejected() -> None:
    with pytest.raises(InvalidDecoratorException, match="appears twice"):
        @schedule(hourly=True)
        @schedule(daily=True)
        class Twice(FlowSpec):
            pass


def test_flow_decorator_on_a_step_or_plain_class_is_rejected() -> None:
    with pytest.raises(InvalidDecoratorException, match="flow decorator") as info:
        class Flow(FlowSpec):
            @schedule  # type: ignore[call-overload]
            @step
            def start(self) -> None: ...
    assert info.value.file == __file__ and info.value.line
    with pytest.raises(InvalidDecoratorException, match="flow decorator"):
        @project(name="x")
        class NotAFlow:
            pass


def test_flow_decorator_unknown_attribute() -> None:
    with pytest.raises(InvalidDecoratorException, match=r"'hour'.*hourly") as info:
        @schedule(hour=True)
        class Flow(FlowSpec):
            pass
    assert info.value.file == __file__


def test_project_names_and_branches() -> None:
    deco = ProjectDecorator({"name": "fraud_model"})
    assert deco.project_name == "fraud_model"
    assert deco.resolve_branch("Alice") == "user.alice"
    assert deco.resolve_branch("alice", branch="exp") == "test.exp"
    assert deco.resolve_branch("alice", production=True) == "prod"
    assert deco.resolve_branch("alice", branch="b", production=True) == "prod.b"
    assert ProjectDecorator({"name": "p", "branch": "x", "production": True}).resolve_branch(
        "alice") == "prod.x"
    assert deco.project_flow_name("TrainFlow", "prod") == "fraud_model.prod.TrainFlow"


@pytest.mark.parametrize("name", ["Fraud", "my-project", "a.b", "", "x" * 129])
def test_project_name_must_be_lowercase_letters_digits_underscore(name: str) -> None:
    with pytest.raises(InvalidDecoratorException, match="@project"):
        ProjectDecorator({"name": name})


def test_project_requires_a_name() -> None:
    with pytest.raises(InvalidDecoratorException, match="name is required"):
        ProjectDecorator()


def test_trigger_on_finish_forms() -> None:
    assert TriggerOnFinishDecorator({"flows": ["A", "B"]}).flows == ["A", "B"]
    deco = TriggerOnFinishDecorator(
        {"flows": ["proj.user.bob.A", {"name": "B", "project": "p", "project_branch": "prod"}]}
    )
    assert deco.flows == ["A", "B"]
    assert deco.upstreams == [UpstreamFlow("A", "proj", "user.bob"), UpstreamFlow("B", "p", "prod")]
    with pytest.raises(InvalidDecoratorException, match="not both"):
        TriggerOnFinishDecorator({"flow": "A", "flows": ["B"]})
    with pytest.raises(InvalidDecoratorException, match="name the upstream flow"):
        TriggerOnFinishDecorator()
    with pytest.raises(InvalidDecoratorException, match="deploy-time"):
        TriggerOnFinishDecorator({"flow": lambda: "A"})
    with pytest.raises(InvalidDecoratorException, match="list of flow names"):
        TriggerOnFinishDecorator({"flows": "A"})


def test_schedule_kflow_extensions_land_in_the_spec_and_are_checked() -> None:
    deco = ScheduleDecorator({"cron": "*/5 * * * *", "concurrency_policy": "forbid",
                              "starting_deadline_seconds": 300,
                              "successful_runs_history_limit": 5,
                              "failed_runs_history_limit": 0})
    assert deco.spec_options() == {"concurrencyPolicy": "Forbid",
                                   "startingDeadlineSeconds": 300,
                                   "successfulRunsHistoryLimit": 5,
                                   "failedRunsHistoryLimit": 0}
    assert ScheduleDecorator({"hourly": True}).spec_options() == {}
    with pytest.raises(InvalidDecoratorException,
                       match="concurrency_policy='Sometimes' must be one of Allow, Forbid"):
        ScheduleDecorator({"concurrency_policy": "Sometimes"})
    with pytest.raises(InvalidDecoratorException, match="at least 1 second"):
        ScheduleDecorator({"starting_deadline_seconds": 0})
    with pytest.raises(InvalidDecoratorException, match="whole number >= 0"):
        ScheduleDecorator({"failed_runs_history_limit": -1})
    with pytest.raises(InvalidDecoratorException, match="at most 1000"):
        ScheduleDecorator({"successful_runs_history_limit": 5000})
