"""Argument parsing (kflow.runner.cli): the operator's contract."""

from __future__ import annotations

import pytest

from kflow.runner.cli import TaskArgs, main, parse_args
from kflow.runner.exitcodes import UsageError

SHA = "a" * 64
BASE = ["--flow-file", "flow.py", "--code-sha256", SHA, "--namespace", "ns", "--flow", "F",
        "--run-id", "r1", "--step", "start", "--task", "0", "--attempt", "0"]


def test_minimal() -> None:
    assert parse_args(BASE) == TaskArgs(flow_file="flow.py", code_sha256=SHA, namespace="ns",
                                        flow="F", run_id="r1", step="start", task="0",
                                        attempt=0)


def test_everything() -> None:
    args = parse_args([*BASE, "--code-url", f"s3://kflow/code/{SHA}.tar.gz", "--param",
                       "alpha=0.5", "--param", "name=a=b", "--tag", "x", "--tag", "y",
                       "--origin-run-id", "r0", "--max-user-code-retries", "2"])
    assert args.code_url == f"s3://kflow/code/{SHA}.tar.gz"
    assert args.params == (("alpha", "0.5"), ("name", "a=b"))
    assert args.tags == ("x", "y")
    assert args.origin_run_id == "r0"
    assert args.max_user_code_retries == 2


@pytest.mark.parametrize(("change", "message"), [
    (["--code-sha256", "abc"], "sha256"),
    (["--task", "3."], "foreach index path"),
    (["--task", "01"], "foreach index path"),
    (["--attempt", "-1"], "attempt"),
    (["--attempt", "x"], "invalid int"),
    (["--param", "novalue"], "NAME=VALUE"),
    (["--code-url", "http://x/y"], "s3://"),
    (["--code-url", "s3://b/k", "--code-dir", "/tmp"], "not allowed with"),
    (["--bogus"], "unrecognized"),
])
def test_bad_arguments(change: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args([*BASE, *change])


def test_missing_required() -> None:
    with pytest.raises(UsageError, match="--step"):
        parse_args([a for a in BASE if a not in ("--step", "start")])


def test_main_returns_2_on_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--step"]) == 2
    assert "kflow.runner: error:" in capsys.readouterr().err
