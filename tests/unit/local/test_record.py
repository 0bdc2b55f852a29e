"""The record of a local run (kflow.local.record): JSON form and effective phase."""

from __future__ import annotations

import pytest

from kflow.local.record import RunRecord

RECORD = RunRecord(flow="TrainFlow", run_id="local-1-abc", namespace="local",
                   flow_file="train.py", code_sha256="a" * 64, user="alice",
                   parameters={"alpha": "0.5"}, tags=("exp",), max_workers=4,
                   origin_run_id="local-0-old", resume_step="fit",
                   status={"phase": "Running"}, host="box", pid=123)


def test_round_trip() -> None:
    assert RunRecord.from_json(RECORD.to_json()) == RECORD


def test_run_model_carries_what_the_planner_acts_on() -> None:
    model = RECORD.run_model()
    assert (model.name, model.max_parallelism, model.resume_from_run, model.resume_from_step) \
        == ("local-1-abc", 4, "local-0-old", "fit")
    assert model.status == {"phase": "Running"}


def test_a_run_whose_driver_died_counts_as_failed() -> None:
    assert RECORD.effective_phase(alive=lambda pid: False, host="box") == "Failed"
    assert RECORD.effective_phase(alive=lambda pid: True, host="box") == "Running"
    # another machine's run: its process cannot be checked from here
    assert RECORD.effective_phase(alive=lambda pid: False, host="other") == "Running"
    done = RECORD.with_status({"phase": "Succeeded"})
    assert done.effective_phase(alive=lambda pid: False, host="box") == "Succeeded"


@pytest.mark.parametrize(("text", "match"), [
    ("{", "not JSON"),
    ('{"kind": "FlowRun"}', "not a LocalRun record"),
    ('{"kind": "LocalRun", "flow": "F"}', "missing or bad field"),
])
def test_broken_records_say_what_is_wrong(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RunRecord.from_json(text)
