"""The runner's command line: parsing it into `TaskArgs` (pure), and `main`.

Owns: the argument contract the operator and the local mode use (see the
package docstring for the full form), `parse_args` (pure: raises
`UsageError`, never exits) and `main`, which runs one task and returns its
exit code. Heavy modules (the store, the SDK, user code) are imported only
after the arguments parse, so ``--help`` and usage errors are instant; and
`leave`, how the task process ends once its result is out.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from kflow.runner.exitcodes import ExitCode, UsageError

__all__ = ["TaskArgs", "build_parser", "leave", "main", "parse_args"]

_SHA256 = re.compile(r"^[a-f0-9]{64}$")
_TASK = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class TaskArgs:
    """One task to run, as given on the command line."""

    flow_file: str
    code_sha256: str
    namespace: str
    flow: str
    run_id: str
    step: str
    task: str
    attempt: int
    code_url: str | None = None
    code_dir: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    origin_run_id: str | None = None
    max_user_code_retries: int | None = None
    trigger_run: str | None = None          # FLOW/RUN_ID of the @trigger_on_finish run


class _Parser(argparse.ArgumentParser):
    """argparse that raises `UsageError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser (also renders ``--help``)."""
    parser = _Parser(
        prog="python -m kflow.runner",
        description="Run one task of a kflow run: fetch the code package, load the "
        "parents' artifacts, run the step, store its artifacts, logs and record.",
        epilog="Store: KFLOW_STORE_DIR (a local directory) or KFLOW_S3_* (from a Secret). "
        "Exit codes: 0 ok, 1 step failed, 2 usage, 65 code package, 66 parent not done, "
        "75 store unavailable, 143 terminated.",
    )
    code = parser.add_argument_group("code")
    code.add_argument("--flow-file", required=True,
                      help="the flow file, relative to the code package's root")
    code.add_argument("--code-sha256", required=True, help="sha256 of the code package")
    where = code.add_mutually_exclusive_group()
    where.add_argument("--code-url", help="s3://bucket/code/<sha>.tar.gz (default: the "
                       "store's code/<sha>.tar.gz)")
    where.add_argument("--code-dir", help="run the code in this directory (local mode; "
                       "not verified against the sha)")
    task = parser.add_argument_group("task")
    task.add_argument("--namespace", required=True)
    task.add_argument("--flow", required=True, help="the flow class's name")
    task.add_argument("--run-id", required=True)
    task.add_argument("--step", required=True)
    task.add_argument("--task", required=True,
                      help='foreach index path: "0" outside foreach, "3", "3.1" nested')
    task.add_argument("--attempt", required=True, type=int, help="0, 1, ... (retry count)")
    run = parser.add_argument_group("run")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="start step only: a parameter value (else KFLOW_RUN_<NAME>, "
                     "else its default)")
    run.add_argument("--tag", action="append", default=[], help="a tag of the run")
    run.add_argument("--origin-run-id", help="the run this one resumes")
    run.add_argument("--trigger-run", metavar="FLOW/RUN_ID",
                     help="the upstream run whose success started this run "
                     "(@trigger_on_finish; current.trigger)")
    run.add_argument("--max-user-code-retries", type=int,
                     help="user-code retries of this step (default: its @retry times); "
                     "decides which attempt is the last, where @catch applies")
    return parser


def parse_args(argv: Sequence[str]) -> TaskArgs:
    """Parse and check the arguments; raises `UsageError` (``--help`` raises SystemExit)."""
    ns = build_parser().parse_args(list(argv))
    if not _SHA256.match(ns.code_sha256):
        raise UsageError(f"--code-sha256 {ns.code_sha256!r} is not a sha256 hex digest")
    if not _TASK.match(ns.task):
        raise UsageError(f"--task {ns.task!r} is not a foreach index path like 0, 3 or 3.1")
    if ns.attempt < 0:
        raise UsageError(f"--attempt must be >= 0, got {ns.attempt}")
    if ns.max_user_code_retries is not None and ns.max_user_code_retries < 0:
        raise UsageError("--max-user-code-retries must be >= 0")
    if ns.code_url is not None and not ns.code_url.startswith(("s3://", "file://", "/")):
        raise UsageError(f"--code-url {ns.code_url!r}: use s3://bucket/key or a file path")
    if ns.trigger_run is not None:
        from kflow.trigger import parse_pathspec

        try:
            parse_pathspec(ns.trigger_run)
        except ValueError as exc:
            raise UsageError(f"--trigger-run: {exc}") from None
    params: list[tuple[str, str]] = []
    for item in ns.param:
        name, sep, value = item.partition("=")
        if not sep or not _PARAM_NAME.match(name):
            raise UsageError(f"--param {item!r}: write NAME=VALUE")
        params.append((name, value))
    return TaskArgs(
        flow_file=ns.flow_file, code_sha256=ns.code_sha256, namespace=ns.namespace,
        flow=ns.flow, run_id=ns.run_id, step=ns.step, task=ns.task, attempt=ns.attempt,
        code_url=ns.code_url, code_dir=ns.code_dir, params=tuple(params), tags=tuple(ns.tag),
        origin_run_id=ns.origin_run_id, max_user_code_retries=ns.max_user_code_retries,
        trigger_run=ns.trigger_run,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one task; return the process exit code (see `kflow.runner.exitcodes`)."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"kflow.runner: error: {exc}", file=sys.stderr)
        print("run 'python -m kflow.runner --help' for the arguments", file=sys.stderr)
        return int(ExitCode.USAGE)
    from kflow.runner.execute import run_task

    return int(run_task(args))


def leave(code: int) -> NoReturn:
    """End the task process with `code` as Python would, minus the interpreter's
    teardown: wait for the threads the step left running, run the atexit handlers
    (the user's too), flush stdout and stderr, then ``os._exit``. By then the record is
    committed and the termination message written; tearing down every module and
    object only delays the pod's end, and with it the next step (measured: ~0.5 s per
    task with 16 tasks on 2 cores)."""
    shutdown = getattr(threading, "_shutdown", None)     # what Py_Finalize calls first
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
