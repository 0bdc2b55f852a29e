"""A Metaflow flow, with only its import line changed, imports, builds and runs in memory."""

from __future__ import annotations

import pytest

from kflow import current
from kflow.flowspec import flow_constants, flow_steps
from kflow.parameters import flow_parameters
from kflow.resources import step_resources, timeout_seconds
from tests.unit.sdk.memory_runner import MemoryRun
from tests.unit.sdk.metaflow_shaped_flow import MovieStatsFlow


def test_it_builds() -> None:
    assert list(flow_steps(MovieStatsFlow)) == [
        "start", "count", "by_genre", "score", "fit", "join_models", "join_genres", "join",
        "decide", "publish_results", "dry_run", "end"]
    assert [p.name for _, p in flow_parameters(MovieStatsFlow)] == [
        "genre", "top-k", "weights", "publish"]
    assert flow_constants(MovieStatsFlow) == {"MODELS": ["linear", "tree"]}
    decos = MovieStatsFlow._flow_decorators
    assert decos["schedule"].cron_expression() == "0 6 * * MON-FRI"  # type: ignore[attr-defined]
    assert decos["project"].attributes == {"name": "movie_recs"}


def test_decorators_reach_the_pod_resources() -> None:
    fit = MovieStatsFlow.fit.decorators  # type: ignore[attr-defined]
    assert step_resources(fit).to_kubernetes() == {
        "requests": {"cpu": "500m", "memory": "4096Mi"},
        "limits": {"memory": "4096Mi", "nvidia.com/gpu": "1"},
    }
    assert timeout_seconds(fit) == 600
    score = MovieStatsFlow.score.decorators  # type: ignore[attr-defined]
    assert step_resources(score).to_kubernetes()["requests"] == {"cpu": "1",
                                                                 "memory": "60000Mi"}


@pytest.mark.parametrize(("publish", "branch"), [("true", "publish_results"),
                                                 ("false", "dry_run")])
def test_it_runs_in_memory(monkeypatch: pytest.MonkeyPatch, publish: str, branch: str) -> None:
    monkeypatch.setenv("KFLOW_RUN_PUBLISH", publish)
    current._set(flow_name="MovieStatsFlow", run_id="r1", step_name="end", task_id="1")
    try:
        run = MemoryRun(MovieStatsFlow).run()
    finally:
        current._reset()
    assert len(run.tasks["score"]) == 3 and len(run.tasks["fit"]) == 6
    assert list(run.tasks) == ["start", "count", "by_genre", "score", "fit", "join_models",
                               "join_genres", "join", "decide", branch, "end"]
    fit = run.tasks["fit"][1]
    assert fit.stack == [(0, 3, "Comedy"), (1, 2, "tree")]  # type: ignore[attr-defined]
    [end] = run.tasks["end"]
    assert end.total == 4  # type: ignore[attr-defined]  # merged from the `count` branch
    assert end.scores["Sci-Fi"] == [("linear", 11.55), ("tree", 11.55)]  # type: ignore[attr-defined]
    assert end.summary == f"MovieStatsFlow: 4 movies, published={publish == 'true'}"  # type: ignore[attr-defined]
