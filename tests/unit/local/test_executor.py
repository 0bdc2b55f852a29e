"""The runner's command line and environment for a local task (pure)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kflow.local.executor import RunLaunch, StepLaunch, runner_argv
from kflow.local.processes import child_environment, store_dir_env
from kflow.planning import StartTask, TaskId
from kflow.runner.cli import parse_args

LAUNCH = RunLaunch(flow_file="train.py", code_dir=Path("/src/flows"), code_sha256="a" * 64,
                   namespace="local", flow="TrainFlow", run_id="local-1-abc",
                   parameters={"alpha": "0.5"}, tags=("exp", "exp2"),
                   steps={"fit": StepLaunch({"MODE": "fast"}, 60)})


def test_argv_parses_as_the_runner_expects() -> None:
    args = parse_args(runner_argv(LAUNCH, StartTask(TaskId("start"), 0, 2)))
    assert (args.flow_file, args.code_dir, args.code_url) == ("train.py", "/src/flows", None)
    assert (args.namespace, args.flow, args.run_id) == ("local", "TrainFlow", "local-1-abc")
    assert (args.step, args.task, args.attempt, args.max_user_code_retries) == \
        ("start", "0", 0, 2)
    assert args.params == (("alpha", "0.5"),)
    assert args.tags == ("exp", "exp2")
    assert args.origin_run_id is None


def test_parameters_go_to_the_start_step_only_and_the_origin_to_every_task() -> None:
    resumed = replace(LAUNCH, origin_run_id="local-0-old")
    args = parse_args(runner_argv(resumed, StartTask(TaskId("fit", "3.1"), 101, 103)))
    assert args.params == ()
    assert (args.task, args.attempt, args.origin_run_id) == ("3.1", 101, "local-0-old")


def test_step_settings_default_when_unknown() -> None:
    assert LAUNCH.step("fit").timeout_seconds == 60
    assert LAUNCH.step("other") == StepLaunch()


def test_child_environment_keeps_kflow_in_charge_of_the_store() -> None:
    base = {"PATH": "/bin", "KFLOW_S3_ENDPOINT": "http://s3", "KFLOW_S3_PREFIX": "p/",
            "KFLOW_STORE_DIR": "/elsewhere", "KFLOW_RUN_ALPHA": "0.3"}
    env = child_environment(base, store_dir_env(Path("/store")), "alice",
                            {"MODE": "fast", "KFLOW_STORE_DIR": "/hijack",
                             "KFLOW_S3_BUCKET": "x"})
    assert env["KFLOW_STORE_DIR"] == "/store"
    assert env["KFLOW_USER"] == "alice"
    assert env["MODE"] == "fast" and env["PATH"] == "/bin"
    assert env["KFLOW_RUN_ALPHA"] == "0.3"
    assert not any(name.startswith("KFLOW_S3_") for name in env)
