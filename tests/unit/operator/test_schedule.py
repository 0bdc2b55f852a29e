"""`plan_schedule`: due times, missed times, policies, deadlines, history limits, names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kflow.api_types import RunPhase
from kflow_operator.schedule import (
    ConcurrencyPolicy,
    CreateRun,
    DeleteRun,
    ScheduledRun,
    ScheduleError,
    ScheduleSpec,
    StopRun,
    plan_schedule,
    scheduled_run_body,
    scheduled_run_name,
)

NOW = datetime(2026, 5, 4, 10, 7, 30, tzinfo=UTC)
FLOW = "nightly-flow"


def spec(cron: str = "*/5 * * * *", **fields: Any) -> ScheduleSpec:
    parsed = ScheduleSpec.from_spec({"schedule": {"cron": cron, **fields}})
    assert parsed is not None
    return parsed


def status(next_time: str | None = None, schedule: str = "*/5 * * * *",
           **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"schedule": schedule, **extra}
    if next_time:
        out["nextScheduleTime"] = next_time
    return out


def run(minute: int, phase: str | None = "Running", stopping: bool = False,
        hour: int = 10) -> ScheduledRun:
    when = datetime(2026, 5, 4, hour, minute, tzinfo=UTC)
    return ScheduledRun(scheduled_run_name(FLOW, when), f"uid-{hour}-{minute}", when,
                        when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        None if phase is None else RunPhase(phase), stopping)


# -- the spec -------------------------------------------------------------------------------


def test_spec_defaults_and_fields() -> None:
    parsed = spec("0 6 * * 1-5", timezone="Europe/Paris", concurrencyPolicy="Forbid",
                  startingDeadlineSeconds=300, successfulRunsHistoryLimit=5,
                  failedRunsHistoryLimit=0)
    assert (parsed.text, parsed.policy, parsed.deadline_seconds, parsed.successful_history,
            parsed.failed_history) == ("0 6 * * 1-5 Europe/Paris", ConcurrencyPolicy.FORBID,
                                       300, 5, 0)
    plain = spec()
    assert (plain.text, plain.policy, plain.deadline_seconds, plain.successful_history,
            plain.failed_history) == ("*/5 * * * *", ConcurrencyPolicy.ALLOW, None, 3, 1)
    assert ScheduleSpec.from_spec({}) is None


@pytest.mark.parametrize(("fields", "says"), [
    ({"cron": "0 0 L * *"}, "spec.schedule.cron: day-of-month field: 'L' is not a number"),
    ({"cron": "* * *"}, "spec.schedule.cron: '* * *' has 3 fields; write 5"),
    ({"cron": "@daily", "timezone": "Mars/Olympus"},
     "spec.schedule.timezone: Mars/Olympus is not a known IANA time zone"),
    ({"cron": "@daily", "concurrencyPolicy": "Never"},
     "spec.schedule.concurrencyPolicy: 'Never' is not one of Allow, Forbid, Replace"),
    ({"cron": "@daily", "startingDeadlineSeconds": 0},
     "spec.schedule.startingDeadlineSeconds: 0 must be a whole number >= 1"),
    ({"cron": "@daily", "failedRunsHistoryLimit": -1},
     "spec.schedule.failedRunsHistoryLimit: -1 must be a whole number >= 0"),
])
def test_spec_errors_name_the_field(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        ScheduleSpec.from_spec({"schedule": fields})
    assert says in str(caught.value)


# -- names ------------------------------------------------------------------------------------


def test_names_are_deterministic_minutes_since_the_epoch() -> None:
    when = datetime(2026, 5, 4, 10, 5, tzinfo=UTC)
    assert scheduled_run_name(FLOW, when) == f"{FLOW}-{int(when.timestamp()) // 60}"
    assert scheduled_run_name(FLOW, when) == scheduled_run_name(FLOW, when)
    long_flow = "a" * 60
    name = scheduled_run_name(long_flow, when)
    assert len(name) <= 63 and name.endswith(str(int(when.timestamp()) // 60))
    assert name != scheduled_run_name("a" * 59 + "b", when)


def test_the_body_is_labelled_and_annotated() -> None:
    when = datetime(2026, 5, 4, 10, 5, tzinfo=UTC)
    body = scheduled_run_body("ml", FLOW, CreateRun(scheduled_run_name(FLOW, when), when))
    assert body["spec"] == {"flowRef": {"name": FLOW}}
    assert body["metadata"]["labels"]["kflow.dev/flow"] == FLOW
    assert body["metadata"]["labels"]["kflow.dev/started-by"] == "schedule"
    assert body["metadata"]["annotations"] == {"kflow.dev/scheduled-at": "2026-05-04T10:05:00Z"}
    observed = ScheduledRun.from_cr({**body, "metadata": {**body["metadata"], "uid": "u",
                                                          "creationTimestamp": "x"}}, FLOW)
    assert observed is not None and observed.scheduled_at == when and observed.active
    assert ScheduledRun.from_cr(body, "other-flow") is None


# -- due times --------------------------------------------------------------------------------


def test_a_new_schedule_starts_nothing_and_waits_for_its_next_time() -> None:
    plan = plan_schedule(FLOW, spec(), {}, [], NOW)
    assert plan.create is None
    assert plan.status == {"nextScheduleTime": "2026-05-04T10:10:00Z"}
    assert plan.requeue_after == 150.0


def test_a_due_time_starts_one_run_and_moves_on() -> None:
    plan = plan_schedule(FLOW, spec(), status("2026-05-04T10:05:00Z"), [], NOW)
    due = datetime(2026, 5, 4, 10, 5, tzinfo=UTC)
    assert plan.create == CreateRun(scheduled_run_name(FLOW, due), due)
    assert plan.status == {"nextScheduleTime": "2026-05-04T10:10:00Z",
                           "lastScheduleTime": "2026-05-04T10:05:00Z",
                           "lastScheduledRun": plan.create.name}
    assert [e.reason for e in plan.events] == ["Scheduled"]
    assert plan.requeue_after == 150.0


def test_many_missed_times_start_only_the_latest() -> None:
    plan = plan_schedule(FLOW, spec(), status("2026-05-04T08:00:00Z"), [], NOW)
    assert plan.create is not None
    assert plan.create.scheduled_at == datetime(2026, 5, 4, 10, 5, tzinfo=UTC)
    assert plan.status["nextScheduleTime"] == "2026-05-04T10:10:00Z"


def test_a_run_already_there_for_the_due_time_is_not_started_again() -> None:
    # e.g. the operator crashed after creating it, before writing the status
    plan = plan_schedule(FLOW, spec(), status("2026-05-04T10:05:00Z"), [run(5)], NOW)
    assert plan.create is None and plan.events == ()
    assert plan.status["lastScheduleTime"] == "2026-05-04T10:05:00Z"
    assert plan.status["nextScheduleTime"] == "2026-05-04T10:10:00Z"


def test_a_changed_schedule_is_recomputed_from_now_without_catching_up() -> None:
    old = status("2026-05-04T10:05:00Z", schedule="0 * * * *",
                 lastScheduleTime="2026-05-04T09:00:00Z")
    plan = plan_schedule(FLOW, spec(), old, [], NOW)
    assert plan.create is None
    assert plan.status == {"nextScheduleTime": "2026-05-04T10:10:00Z",
                           "lastScheduleTime": "2026-05-04T09:00:00Z"}


def test_a_removed_schedule_starts_nothing_and_keeps_its_history() -> None:
    old = status("2026-05-04T10:05:00Z", lastScheduleTime="2026-05-04T10:00:00Z",
                 lastScheduledRun="x")
    plan = plan_schedule(FLOW, None, old, [run(0, "Succeeded")], NOW)
    assert plan.create is None and plan.deletes == () and plan.requeue_after is None
    assert plan.status == {"lastScheduleTime": "2026-05-04T10:00:00Z", "lastScheduledRun": "x"}


def test_time_zone_of_the_schedule() -> None:
    paris = spec("0 12 * * *", timezone="Europe/Paris")
    plan = plan_schedule(FLOW, paris, {"schedule": paris.text}, [], NOW)
    assert plan.status["nextScheduleTime"] == "2026-05-05T10:00:00Z"   # 12:00 CEST, passed


# -- deadline -------------------------------------------------------------------------------


def test_a_time_missed_by_more_than_the_deadline_is_skipped_with_an_event() -> None:
    plan = plan_schedule(FLOW, spec(startingDeadlineSeconds=60),
                         status("2026-05-04T10:05:00Z"), [], NOW)       # 150 s late
    assert plan.create is None
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "MissedSchedule")]
    assert "startingDeadlineSeconds=60" in plan.events[0].message
    assert plan.status["nextScheduleTime"] == "2026-05-04T10:10:00Z"


def test_a_time_within_the_deadline_starts() -> None:
    plan = plan_schedule(FLOW, spec(startingDeadlineSeconds=200),
                         status("2026-05-04T10:05:00Z"), [], NOW)
    assert plan.create is not None


# -- concurrency policies ----------------------------------------------------------------------


def test_allow_starts_beside_an_active_run() -> None:
    plan = plan_schedule(FLOW, spec(), status("2026-05-04T10:05:00Z"), [run(0)], NOW)
    assert plan.create is not None and plan.stops == ()


def test_forbid_waits_while_a_scheduled_run_is_active() -> None:
    old = status("2026-05-04T10:05:00Z")
    plan = plan_schedule(FLOW, spec(concurrencyPolicy="Forbid"), old, [run(0)], NOW)
    assert plan.create is None and plan.events == ()
    assert plan.status["nextScheduleTime"] == "2026-05-04T10:05:00Z"      # still pending
    assert plan.requeue_after == 150.0                                  # the next time
    # the active run ended: the pending time starts now
    plan = plan_schedule(FLOW, spec(concurrencyPolicy="Forbid"), old, [run(0, "Failed")],
                         NOW)
    assert plan.create is not None
    assert plan.create.scheduled_at == datetime(2026, 5, 4, 10, 5, tzinfo=UTC)


def test_forbid_with_a_deadline_wakes_to_record_the_miss() -> None:
    plan = plan_schedule(FLOW, spec(concurrencyPolicy="Forbid", startingDeadlineSeconds=200),
                         status("2026-05-04T10:05:00Z"), [run(0)], NOW)
    assert plan.create is None
    assert plan.requeue_after == 51.0           # 10:05 + 200 s + 1 s, before the next time
    later = NOW + timedelta(seconds=60)
    plan = plan_schedule(FLOW, spec(concurrencyPolicy="Forbid", startingDeadlineSeconds=200),
                         status("2026-05-04T10:05:00Z"), [run(0, "Succeeded")], later)
    assert plan.create is None and plan.events[0].reason == "MissedSchedule"


def test_replace_stops_the_active_runs_and_starts_the_new_one() -> None:
    runs = [run(0), run(1, stopping=True), run(2, "Succeeded")]
    plan = plan_schedule(FLOW, spec(concurrencyPolicy="Replace"),
                         status("2026-05-04T10:05:00Z"), runs, NOW)
    assert plan.create is not None
    assert plan.stops == (StopRun(runs[0].name),)       # the stopping one is left alone


# -- history ----------------------------------------------------------------------------------


def test_history_keeps_the_newest_finished_runs_per_outcome() -> None:
    runs = [run(m, "Succeeded", hour=8) for m in range(5)] + \
           [run(m, "Failed", hour=9) for m in range(3)] + [run(0, "Stopped", hour=7),
                                                            run(30, "Running", hour=9)]
    plan = plan_schedule(FLOW, spec(), status("2026-05-04T10:10:00Z"), runs, NOW)
    deleted = {d.name for d in plan.deletes}
    assert deleted == {runs[i].name for i in (0, 1, 5, 6, 8)}
    assert all(isinstance(d, DeleteRun) and d.uid for d in plan.deletes)


def test_history_limits_of_zero_delete_every_finished_run() -> None:
    runs = [run(1, "Succeeded"), run(2, "Failed"), run(3, "Running")]
    plan = plan_schedule(FLOW, spec(successfulRunsHistoryLimit=0, failedRunsHistoryLimit=0),
                         status("2026-05-04T10:10:00Z"), runs, NOW)
    assert {d.name for d in plan.deletes} == {runs[0].name, runs[1].name}
