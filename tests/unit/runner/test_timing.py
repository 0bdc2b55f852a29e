"""Where an attempt's time went: `TaskMetadata.timing` (meta.json) and the runner's clock
readings (kflow.runner.execute: the pod's env variables, the process start)."""

from __future__ import annotations

import json
import time

import pytest

from kflow.runner.execute import _pod_times, _process_start
from kflow.store import TaskMetadata

T = 1795946400.0          # 2026-11-29T10:00:00Z


def meta(**timing: float) -> TaskMetadata:
    return TaskMetadata(attempt=0, started_at=T, user="u", host="h", code_sha256=None,
                        python_version="3.11", cloudpickle_version="3", kflow_version="0",
                        timing=timing)


def test_timing_is_written_with_milliseconds_and_read_back() -> None:
    record = meta(readyAt=T + 0.1204, createdAt=T + 0.25, startedAt=T + 0.5,
                  userStartedAt=T + 0.75, userFinishedAt=T + 3.0, finishedAt=T + 3.1)
    doc = json.loads(record.to_json())
    assert doc["timing"]["readyAt"] == "2026-11-29T10:00:00.120Z"
    assert doc["timing"]["finishedAt"] == "2026-11-29T10:00:03.100Z"
    back = TaskMetadata.from_json(record.to_json())
    assert back.timing["createdAt"] == pytest.approx(T + 0.25)
    assert back.timing["readyAt"] == pytest.approx(T + 0.12)
    assert set(back.timing) == set(record.timing)


def test_records_without_timing_or_with_bad_entries_still_read() -> None:
    doc = json.loads(meta().to_json())
    del doc["timing"]
    assert TaskMetadata.from_json(json.dumps(doc)).timing == {}
    doc["timing"] = {"readyAt": "soon", "createdAt": 3, "startedAt": "2026-11-29T10:00:00Z"}
    assert TaskMetadata.from_json(json.dumps(doc)).timing == {"startedAt": T}
    doc["timing"] = ["not", "a", "mapping"]
    assert TaskMetadata.from_json(json.dumps(doc)).timing == {}


def test_the_operators_readings_come_from_the_pods_environment() -> None:
    env = {"KFLOW_TASK_READY_AT": "2026-11-29T10:00:00.120Z",
           "KFLOW_TASK_CREATED_AT": "2026-11-29T10:00:00.250Z"}
    assert _pod_times(env) == {"readyAt": pytest.approx(T + 0.12),
                               "createdAt": pytest.approx(T + 0.25)}
    # absent annotations resolve to "" through the downward API
    assert _pod_times({"KFLOW_TASK_READY_AT": "", "KFLOW_TASK_CREATED_AT": "x"}) == {}
    assert _pod_times({}) == {}


def test_the_process_start_is_before_now_and_recent() -> None:
    now = time.time()
    assert now - 3600 < _process_start() <= now
