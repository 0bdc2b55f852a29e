"""`current`: None/False outside a task; filled by the runner's `_set`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kflow import current


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    current._reset()
    yield
    current._reset()


def test_outside_a_task() -> None:
    for name in ("flow_name", "run_id", "step_name", "task_id", "retry_count", "origin_run_id",
                 "namespace", "username", "tags", "parameter_names", "pathspec"):
        assert getattr(current, name) is None, name
    assert current.is_running_flow is False
    assert "flow_name" not in current
    assert "project_name" not in current
    with pytest.raises(AttributeError, match="@project"):
        _ = current.project_name


def test_inside_a_task() -> None:
    current._set(flow_name="TrainFlow", run_id="kflow-abc", step_name="train", task_id="7",
                 retry_count=1, username="alice", namespace="user:alice", tags=["x"],
                 parameter_names=["alpha"])
    assert current.pathspec == "TrainFlow/kflow-abc/train/7"
    assert current.is_running_flow is True
    assert current.retry_count == 1
    assert current.tags == ("x",)
    assert current.parameter_names == ("alpha",)
    assert current.origin_run_id is None
    assert "flow_name" in current and "project_name" not in current
    current._update(retry_count=2)
    assert current.retry_count == 2


def test_project_fields_only_with_project() -> None:
    current._set(flow_name="F", run_id="r", step_name="s", task_id="1", project_name="p",
                 branch_name="user.alice", project_flow_name="p.user.alice.F")
    assert "project_name" in current
    assert (current.project_name, current.branch_name, current.project_flow_name) == (
        "p", "user.alice", "p.user.alice.F")
