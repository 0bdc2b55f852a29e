"""`flow_status`: acceptance, conditions, printer-column fields and ``lastRun``."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from kflow_operator.flowstatus import flow_status, last_run, status_patch

MANIFESTS = Path(__file__).resolve().parents[2] / "fixtures" / "golden" / "manifests"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def flow(name: str = "train_flow", generation: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((MANIFESTS / f"{name}.yaml").read_text())
    body["metadata"]["generation"] = generation
    return body


def with_cycle(body: dict[str, Any]) -> dict[str, Any]:
    """Two unreachable steps going to each other: valid for the CRD's CEL, not a DAG."""
    body["spec"]["steps"][-1:-1] = [{"name": "ping", "type": "linear", "next": ["pong"]},
                                    {"name": "pong", "type": "linear", "next": ["ping"]}]
    return body


def run(name: str, started: str | None, phase: str | None = "Running",
        flow_name: str = "train-flow", created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    status = {k: v for k, v in (("phase", phase), ("startedAt", started)) if v}
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"flowRef": {"name": flow_name}}, "status": status}


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_a_valid_flow_is_accepted_and_ready_with_its_printer_columns() -> None:
    status = flow_status(flow(generation=3), [], NOW)
    assert conditions(status) == {"Accepted": ("True", "Accepted"), "Ready": ("True", "Ready")}
    assert status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert status["stepCount"] == 5
    assert status["schedule"] == "0 0 * * *"
    assert "lastRun" not in status


def test_the_schedule_shows_its_time_zone_and_is_absent_without_one() -> None:
    body = flow()
    body["spec"]["schedule"] = {"cron": "0 0 * * *", "timezone": "Europe/Paris"}
    assert flow_status(body, [], NOW)["schedule"] == "0 0 * * * Europe/Paris"
    assert "schedule" not in flow_status(flow("branch_flow"), [], NOW)


def test_a_graph_the_planner_cannot_run_is_not_accepted_and_not_ready() -> None:
    status = flow_status(with_cycle(flow()), [], NOW)
    assert conditions(status) == {"Accepted": ("False", "InvalidGraph"),
                                  "Ready": ("False", "NotAccepted")}
    accepted = status["conditions"][0]
    assert "the graph has a cycle" in accepted["message"]
    assert "deploy it again" in accepted["message"]
    assert status["stepCount"] == 7


def test_an_unknown_time_zone_is_not_accepted() -> None:
    body = flow()
    body["spec"]["schedule"] = {"cron": "0 0 * * *", "timezone": "Mars/Olympus"}
    accepted = flow_status(body, [], NOW)["conditions"][0]
    assert (accepted["status"], accepted["reason"]) == ("False", "InvalidSchedule")
    assert "Mars/Olympus" in accepted["message"]


def test_last_transition_time_is_kept_while_a_condition_keeps_its_status() -> None:
    body = flow()
    body["status"] = flow_status(body, [], NOW)
    later = NOW + timedelta(hours=1)
    again = flow_status(body, [], later)
    assert again == body["status"]
    broken = with_cycle(copy.deepcopy(body))
    changed = flow_status(broken, [], later)
    assert {c["lastTransitionTime"] for c in changed["conditions"]} == {"2026-01-02T04:04:05Z"}


def test_keys_of_others_are_kept_and_the_patch_removes_what_went_away() -> None:
    body = flow()
    body["status"] = {"nextScheduleTime": "2026-01-03T00:00:00Z", "schedule": "stale"}
    body["spec"].pop("schedule")
    status = flow_status(body, [], NOW)
    assert status["nextScheduleTime"] == "2026-01-03T00:00:00Z"
    assert status_patch(body["status"], status)["schedule"] is None


def test_last_run_is_the_most_recently_started_run_of_this_flow() -> None:
    runs = [run("old", "2026-01-01T10:00:00Z", "Succeeded"),
            run("new", "2026-01-01T11:00:00Z", "Failed"),
            run("other-flow", "2026-01-01T12:00:00Z", flow_name="branch-flow")]
    assert last_run("train-flow", runs) == {"name": "new", "phase": "Failed",
                                            "startedAt": "2026-01-01T11:00:00Z"}
    assert flow_status(flow(), runs, NOW)["lastRun"]["name"] == "new"


@pytest.mark.parametrize(("created", "expected"), [
    ("2026-01-01T12:00:00Z", "fresh"),     # created after "new" started: newer
    ("2026-01-01T10:30:00Z", "new"),
])
def test_a_run_not_started_yet_counts_from_its_creation(created: str, expected: str) -> None:
    runs = [run("new", "2026-01-01T11:00:00Z"), run("fresh", None, None, created=created)]
    newest = last_run("train-flow", runs)
    assert newest is not None and newest["name"] == expected
    if expected == "fresh":
        assert newest == {"name": "fresh", "phase": "Pending"}


def test_deleted_runs_and_no_runs_mean_no_last_run() -> None:
    gone = run("gone", "2026-01-01T11:00:00Z")
    gone["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    assert last_run("train-flow", [gone]) is None
    assert last_run("train-flow", []) is None
