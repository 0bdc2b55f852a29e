"""`python -m kflow.runner` as a subprocess against the real S3 server (and a local dir).

A small driver (`runner_driver.Driver`) plays the operator: it uploads the
code package, runs each task as a process, follows the termination messages
through the graph and fans out foreach tasks. The tests check every
artifact value, the logs, the DONE markers, failures and their exit codes.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kflow.store import ExceptionInfo
from tests.integration.conftest import S3Server
from tests.integration.runner_driver import Driver

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "flows"
FIXTURES = ROOT / "tests" / "fixtures" / "flows"
RUNNER_FLOWS = Path(__file__).resolve().parent / "runner_flows"


@pytest.fixture
def s3_env(s3_server: S3Server) -> dict[str, str]:
    """The S3 store's environment, under a prefix of this test's own."""
    return s3_server.env(prefix=f"runner-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def driver_for(s3_env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    made: list[Driver] = []

    def make(flow_file: Path, run_id: str = "r1", **kw: object) -> Driver:
        driver = Driver(flow_file, s3_env, tmp_path, run_id, **kw)  # type: ignore[arg-type]
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.store.close()


def user_artifacts(values: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in values.items() if not k.startswith("_")}


def test_linear(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = driver_for(FIXTURES / "linear.py")
    runs = d.run_flow()
    assert sorted(runs) == [("a", "0"), ("end", "0"), ("start", "0")]
    assert user_artifacts(d.artifacts("start")) == {"data": [1, 2, 3]}
    assert user_artifacts(d.artifacts("a")) == {"data": [2, 4, 6]}
    assert user_artifacts(d.artifacts("end")) == {"data": [2, 4, 6]}
    assert d.log("end") == "[2, 4, 6]\n"
    assert runs[("end", "0")].stdout == "[2, 4, 6]\n"  # teed to the container output too
    for step in ("start", "a", "end"):
        assert d.store.is_done(d.key(step))
        assert d.store.read_meta(d.key(step)).exit_status == 0
    start = runs[("start", "0")].result
    assert start is not None and start["next"] == ["a"] and start["artifacts"] >= 1
    assert set(start["timings"]) == {"code", "inputs", "user", "persist", "total"}
    # `end` inherited `data` as a reference: the same blob, never uploaded again.
    assert (d.store.read_index(d.key("end"))["data"]
            == d.store.read_index(d.key("a"))["data"])


def test_branch_with_merge_artifacts(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = driver_for(EXAMPLES / "branch_flow.py")
    runs = d.run_flow(["--param", "rows=10"])
    assert sorted(runs) == [(s, "0") for s in ("counts", "end", "merge", "start", "sums")]
    assert d.artifacts("start")["data"] == list(range(10))
    merged = d.artifacts("merge")
    assert user_artifacts(merged) == {"rows": 10, "count": 10, "total": 45, "mean": 4.5}
    # merge_artifacts copied references: same refs as the branches' (no data loaded).
    merge_index = d.store.read_index(d.key("merge"))
    assert merge_index["count"] == d.store.read_index(d.key("counts"))["count"]
    assert merge_index["total"] == d.store.read_index(d.key("sums"))["total"]
    assert "data" not in merge_index  # excluded, and joins start empty
    assert user_artifacts(d.artifacts("end")) == user_artifacts(merged)
    assert d.log("end") == "mean of 10 rows: 4.5\n"


def test_foreach(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = driver_for(EXAMPLES / "train_flow.py")
    runs = d.run_flow()
    start = runs[("start", "0")].result
    assert start is not None and start["foreach"] == {"var": "rates", "splits": 3}
    rates = [0.01, 0.1, 0.5]
    for i, rate in enumerate(rates):
        train = d.artifacts("train", str(i))
        assert train["model"]["rate"] == rate
        assert train["_foreach_stack"][0].index == i
    end = d.artifacts("end")
    assert end["model"] == {"rate": 0.5, "weight": 0.875}
    assert end["score"] == 0.875
    assert end["report_error"] is None  # @catch's variable when nothing failed
    assert "best rate 0.5 score 0.875" in d.log("report")
    assert f"run {d.run_id}:" in d.log("report")


def test_nested_foreach(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = driver_for(FIXTURES / "nested_foreach.py")
    runs = d.run_flow()
    inner = sorted(task for step, task in runs if step == "foreach_inner")
    assert len(inner) == 3 * 2 * 6 and "2.1.5" in inner
    expected = [x + y + z for x in "abc" for y in "de" for z in "fghijk"]
    assert d.artifacts("foreach_join_x")["combos"] == expected
    assert d.artifacts("end")["combos"] == expected
    assert d.artifacts("foreach_join_z", "1.0")["combos"] == ["b" + "d" + z for z in "fghijk"]
    assert d.artifacts("foreach_inner", "2.1.5")["combo"] == "cek"


def test_parameters_current_and_logs(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = driver_for(RUNNER_FLOWS / "probe_flow.py", run_id="probe-1")
    runs = d.run_flow(["--param", "greeting=hey", "--param", "count=3", "--tag", "t1",
                       "--origin-run-id", "probe-0"])
    seen = d.artifacts("start")["seen_start"]
    assert seen == {
        "greeting": "hey", "count": 3, "config": {"k": 1}, "flow_name": "ProbeFlow",
        "run_id": "probe-1", "step_name": "start", "task_id": "0", "retry_count": 0,
        "origin_run_id": "probe-0", "namespace": "default", "username": seen["username"],
        "tags": ["t1"], "parameter_names": ["greeting", "count", "config"],
        "is_running_flow": True, "pathspec": "ProbeFlow/probe-1/start/0",
    }
    for i in range(3):
        fan = d.artifacts("fan", str(i))
        assert fan["value"] == (i, f"hey-{i}", "hey", "cm")
        assert fan["stack"] == [(i, 3, f"hey-{i}")]
        assert fan["shared"] == [1, 2, 3, i]  # changed in place, saved again
        log = d.log("fan", str(i))
        assert "fd-level write\n" in log and f"subprocess of fan {i}\n" in log
    gather = d.artifacts("gather")
    assert gather["greeting_in_join"] == "hey"
    assert gather["greeting"] == "hey" and gather["count"] == 3  # parameters reach joins
    assert gather["shareds"] == [[1, 2, 3, i] for i in range(3)]
    final = d.artifacts("end")["final"]
    assert final == ([(i, f"hey-{i}", "hey", "cm") for i in range(3)], "hey", 3,
                     "ProbeFlow/probe-1/end/0")
    assert d.log("start") == "start says hi\n"
    assert d.log("start", stream="stderr") == "start warns\n"
    assert "start says hi" in runs[("start", "0")].stdout
    assert "start warns" in runs[("start", "0")].stderr
    assert d.artifacts("start")["UNIT"] == "cm"  # constants are recorded once, at start


def test_parameter_from_environment(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = driver_for(RUNNER_FLOWS / "probe_flow.py", run_id="probe-env")
    run = d.run("start", env={"KFLOW_RUN_CONFIG": '{"k": 2}', "KFLOW_RUN_COUNT": "1"})
    assert run.code == 0, run
    assert d.artifacts("start")["config"] == {"k": 2}
    assert d.artifacts("start")["items"] == ["hello-0"]
    bad = d.run("start", attempt=1, extra=["--param", "count=many"])
    assert bad.code == 2 and "whole number" in bad.stderr
    unknown = d.run("start", attempt=2, extra=["--param", "nope=1"])
    assert unknown.code == 2 and "unknown parameter(s) nope" in unknown.stderr


def trouble(driver_for, mode: str) -> Driver:  # type: ignore[no-untyped-def]
    d: Driver = driver_for(RUNNER_FLOWS / "trouble_flow.py", run_id=f"trouble-{mode}")
    start = d.run("start", extra=["--param", f"mode={mode}"])
    assert start.code == 0, start
    assert start.result is not None and start.result["switch"] == mode
    return d


def test_user_exception(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = trouble(driver_for, "fail")
    run = d.run("fail")
    assert run.code == 1, run
    assert run.result is not None and run.result["ok"] is False
    assert run.result["error"] == {"type": "ValueError", "message": "boom in fail"}
    assert run.result["next"] == []
    assert d.store.is_done(d.key("fail"))
    meta = d.store.read_meta(d.key("fail"))
    assert meta.exit_status == 1
    assert meta.exception is not None and meta.exception.type == "builtins.ValueError"
    assert "boom in fail" in meta.exception.traceback
    assert "trouble_flow.py" in meta.exception.traceback
    stored = d.artifacts("fail")
    assert stored["partial"] == 41 and stored["kept"] == "set before the trouble"
    assert stored["_task_ok"] is False and stored["_success"] is False
    assert d.log("fail") == "about to fail\n"
    stderr_log = d.log("fail", stream="stderr")
    assert "Traceback" in stderr_log and "ValueError: boom in fail" in stderr_log
    # the next step refuses to start after a failed parent
    end = d.run("end")
    assert end.code == 66 and "did not succeed" in end.stderr


def test_catch_after_retries_and_fallback(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = trouble(driver_for, "caught")
    first = d.run("caught", attempt=0)  # @retry(times=1): not the last attempt yet
    assert first.code == 1, first
    last = d.run("caught", attempt=1)
    assert last.code == 0, last
    assert last.result is not None and last.result["ok"] is True
    assert last.result["next"] == ["end"]
    assert last.result["error"]["type"] == "KeyError"
    stored = d.artifacts("caught", attempt=1)
    failure = stored["failure"]
    assert isinstance(failure, ExceptionInfo) and "caught this" in failure.message
    assert "Traceback" in failure.traceback
    assert stored["_task_ok"] is True and stored["_success"] is False
    assert d.store.read_meta(d.key("caught", attempt=1)).exit_status == 0
    fallback = d.run("caught", attempt=2)  # beyond the user-code retries: not run at all
    assert fallback.code == 0, fallback
    assert "fallback" in d.artifacts("caught", attempt=2)["failure"].message
    assert "caught is failing" not in d.log("caught", attempt=2)
    end = d.run("end")
    assert end.code == 0, end


def test_timeout(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = trouble(driver_for, "slow")
    started = time.monotonic()
    run = d.run("slow")
    assert time.monotonic() - started < 10
    assert run.code == 1, run
    assert run.result is not None and run.result["error"]["type"] == "StepTimeoutError"
    assert "timed out after 1 second" in run.result["error"]["message"]
    assert d.log("slow") == "sleeping too long\n"


def test_missing_artifact_names_the_parent(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = trouble(driver_for, "missing")
    run = d.run("missing")
    assert run.code == 1, run
    assert run.result is not None
    assert run.result["error"] == {
        "type": "AttributeError",
        "message": "artifact 'model' was not set by step 'start' (task 0), the parent of "
                   "'missing'",
    }


def test_unpicklable_artifact_names_it(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = trouble(driver_for, "unpicklable")
    run = d.run("unpicklable")
    assert run.code == 1, run
    assert run.result is not None
    message = run.result["error"]["message"]
    assert "'lock'" in message and "lock" in message.lower() and "cannot be pickled" in message
    assert d.store.is_done(d.key("unpicklable"))
    assert "lock" not in d.store.read_index(d.key("unpicklable"))


def test_checksum_mismatch_and_missing_package(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = driver_for(FIXTURES / "linear.py")
    fake_sha = hashlib.sha256(b"another package").hexdigest()
    # The store holds the real package's bytes under another digest's key.
    d.store.objects.put(d.store.layout.code_package(fake_sha), d.package.data)
    argv = d.argv("start")
    argv[argv.index("--code-sha256") + 1] = fake_sha
    run = d.run("start", argv=argv)
    assert run.code == 65, run
    assert run.result is not None and run.result["error"]["type"] == "CodePackageError"
    assert "digest mismatch" in run.result["error"]["message"]
    missing = hashlib.sha256(b"never uploaded").hexdigest()
    argv[argv.index("--code-sha256") + 1] = missing
    run = d.run("start", argv=argv)
    assert run.code == 65 and "not in the store" in run.stderr


def test_parent_not_done(driver_for) -> None:  # type: ignore[no-untyped-def]
    d = driver_for(FIXTURES / "linear.py", run_id="early")
    run = d.run("a")
    assert run.code == 66, run
    assert run.result is not None and run.result["error"]["type"] == "ParentNotDoneError"
    assert "start/0" in run.result["error"]["message"]


def test_store_unreachable(tmp_path: Path) -> None:
    from tests.integration.runner_driver import Driver as _Driver

    local = _Driver(FIXTURES / "linear.py", {"KFLOW_STORE_DIR": str(tmp_path / "s")},
                    tmp_path, "r1")
    env = {"KFLOW_STORE_DIR": "", "KFLOW_S3_ENDPOINT": "http://127.0.0.1:9",
           "KFLOW_S3_ACCESS_KEY": "x", "KFLOW_S3_SECRET_KEY": "y",
           "KFLOW_STORE_RETRY_SECONDS": "0.5"}
    started = time.monotonic()
    run = local.run("start", env=env)
    assert run.code == 75, run
    assert time.monotonic() - started < 15
    assert run.result is not None and run.result["error"]["type"] == "StoreUnavailableError"


def test_local_directory_store(tmp_path: Path) -> None:
    """The same driver with KFLOW_STORE_DIR and --code-dir (the local mode's way)."""
    env = {"KFLOW_STORE_DIR": str(tmp_path / "store")}
    d = Driver(EXAMPLES / "branch_flow.py", env, tmp_path, "local-1", code_dir=True)
    d.run_flow(["--param", "rows=4"])
    assert user_artifacts(d.artifacts("end")) == {"rows": 4, "count": 4, "total": 6,
                                                  "mean": 1.5}
    assert d.log("end") == "mean of 4 rows: 1.5\n"
    assert (tmp_path / "store" / "runs" / "default" / "BranchFlow" / "local-1" / "end" / "0"
            / "0" / "DONE").is_file()


def test_the_record_and_the_result_time_the_attempt(tmp_path: Path) -> None:
    """meta.json's ``timing`` and the termination message's ``at``: ordered ms readings."""
    env = {"KFLOW_STORE_DIR": str(tmp_path / "store")}
    d = Driver(FIXTURES / "linear.py", env, tmp_path, "timed-1", code_dir=True)
    ready, created = "2026-11-29T10:00:00.120Z", "2026-11-29T10:00:00.250Z"
    run = d.run("start", env={"KFLOW_TASK_READY_AT": ready, "KFLOW_TASK_CREATED_AT": created})
    assert run.code == 0, run
    timing = d.store.read_meta(d.key("start")).timing
    assert set(timing) == {"readyAt", "createdAt", "startedAt", "userStartedAt",
                           "userFinishedAt", "finishedAt"}
    order = ["startedAt", "userStartedAt", "userFinishedAt", "finishedAt"]
    assert [timing[k] for k in order] == sorted(timing[k] for k in order)
    assert timing["createdAt"] - timing["readyAt"] == pytest.approx(0.13)
    assert run.result is not None
    assert run.result["at"] == {k: pytest.approx(timing[k], abs=0.002) for k in order}


def test_decorated_flow_with_project(tmp_path: Path) -> None:
    """@project (current's project fields), @retry, @resources and @catch on a local store."""
    env = {"KFLOW_STORE_DIR": str(tmp_path / "store")}
    d = Driver(FIXTURES / "parameters_decorators.py", env, tmp_path, "deco-1")
    d.run_flow(["--param", "alpha=0.5", "--param", "epochs=4"])
    end = user_artifacts(d.artifacts("end"))
    assert end == {"alpha": 0.5, "epochs": 4, "history": [0.0, 0.5, 1.0, 1.5], "score": 3.0,
                   "failure": None}
