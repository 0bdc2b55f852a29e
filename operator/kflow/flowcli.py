"""The flow file's command line: `python flow.py check | show | deploy | package | run |
trigger | resume | logs`.

Owns: parsing the flow-file commands and their exit codes, including one
``--<param>`` option per flow `Parameter` on `run` and `trigger`. Instantiating a
FlowSpec subclass under `__main__` lands here (`FlowSpec.__init__` calls
`main`). Each command is a thin call: the graph comes from `kflow.graph`, the
checks from `kflow.lint`, pictures from `kflow.render`, the code package from
`kflow.packaging`, deployment from `kflow.deploy`, starting and following a run
from `kflow.launch` (`run` deploys first, `trigger` runs what is deployed), and
an in-place resume from `kflow.submit` (which does not need the flow to be
valid: it only patches the run), logs from `kflow.history`; with ``--local``,
`run` and `resume` run on this machine through `kflow.local` (no cluster, a local
store) and `logs` reads that store.

Exit codes: 0 on success, 1 when the flow is invalid or a command fails
(each error says what, where and what to do) and when a followed run Failed or
was Stopped, 2 on bad command-line usage, 130 when Ctrl-C stops following a run.
Running the file with no command checks it, like Metaflow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from kflow.flowspec import FlowSpec
    from kflow.graph import FlowGraph
    from kflow.local import LocalSettings
    from kflow.parameters import Parameter

PARAM_DEST = "param:"  # argparse dest of a ``--<param>`` option: "param:<name>"
RUN_COMMANDS = ("run", "trigger")
# Options of `run`/`trigger` themselves: a parameter of one of these names gets no option.
_RUN_OPTIONS = frozenset({"help", "namespace", "tag", "max-parallelism", "detach", "name",
                          "image", "package-include", "local", "max-workers"})


def _prog() -> str:
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "flow.py"


def _positive(text: str) -> int:
    from kflow.api_types import MAX_MAX_PARALLELISM

    value = int(text)
    if not 1 <= value <= MAX_MAX_PARALLELISM:
        raise argparse.ArgumentTypeError(f"must be within 1 … {MAX_MAX_PARALLELISM}")
    return value


def _add_run_options(command: argparse.ArgumentParser,
                     parameters: list[Parameter], *, deploys: bool) -> None:
    """The options `run` and `trigger` share, and one ``--<param>`` per flow Parameter."""
    command.add_argument("--namespace", help="namespace of the run (default: from the config)")
    command.add_argument("--tag", action="append", default=[], metavar="TAG",
                         help="a tag of the run (repeat for more)")
    command.add_argument("--max-parallelism", type=_positive, metavar="N",
                         help="at most N tasks at once (default: the operator's, 16)")
    command.add_argument("--name", help="name of the FlowRun (default: generated from the "
                         "flow's name)")
    command.add_argument("--detach", action="store_true",
                         help="print the run's name and return; do not follow it")
    if deploys:
        _add_local_options(command)
        command.add_argument("--image", help="default image of step pods (default: from "
                             "the config)")
        command.add_argument("--package-include", action="append", default=[],
                             metavar="GLOB", help="extra files to package (glob relative "
                             "to the flow's folder)")
    group = command.add_argument_group("parameters of the flow")
    for param in parameters:
        if param.name in _RUN_OPTIONS:
            continue  # `_given_parameters` says so when the command runs
        default = "" if param.default is None else f" (default: {param.default!r})"
        group.add_argument(f"--{param.name}", dest=PARAM_DEST + param.name,
                           metavar=param.kind.upper(),
                           help=(param.help or param.kind) + default
                           + (" [required]" if param.required else ""))


def _add_local_options(command: argparse.ArgumentParser) -> None:
    """``--local`` and ``--max-workers`` (`run` and `resume`; see `kflow.local`)."""
    command.add_argument("--local", action="store_true",
                         help="run on this machine: no cluster, a local store "
                         "($KFLOW_STORE_DIR, else .kflow/store here or above)")
    command.add_argument("--max-workers", type=_positive, metavar="N",
                         help="at most N tasks at once (default 16; on the cluster the "
                         "same as --max-parallelism)")


def _parser(flow_name: str, parameters: list[Parameter] | None = None) -> argparse.ArgumentParser:
    parameters = parameters or []
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description=f"Commands of the flow {flow_name}. Without a command: check.",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("check", help="check the flow's graph and decorators")
    show = commands.add_parser("show", help="print the flow's graph")
    show.add_argument("--format", choices=("text", "mermaid", "dot", "json"), default="text")
    package = commands.add_parser("package", help="build the code package and print its sha256")
    package.add_argument("--package-include", action="append", default=[], metavar="GLOB",
                         help="extra files to package (glob relative to the flow's folder)")
    package.add_argument("--output", help="also write the tar.gz to this file")
    deploy = commands.add_parser(
        "deploy", help="upload the code package and apply the Flow resource",
        description="Uploads the code package to the object store (skipped when that sha256 "
        "is already there) and server-side-applies the Flow resource. Deploying unchanged "
        "code changes nothing.")
    deploy.add_argument("--namespace", help="namespace of the Flow (default: from the config)")
    deploy.add_argument("--image", help="default image of step pods (default: from the config)")
    deploy.add_argument("--package-include", action="append", default=[], metavar="GLOB",
                        help="extra files to package (glob relative to the flow's folder)")
    deploy.add_argument("--dry-run", action="store_true",
                        help="print the Flow resource and upload/apply nothing")
    resume = commands.add_parser(
        "resume", help="resume a failed run in place (bumps spec.resume.attempt)",
        description="Asks the operator to resume a Failed FlowRun in place: sets "
        "spec.resume.attempt to one more than the last resume (and spec.resume.step). "
        "Succeeded tasks are kept; without --step the failed steps run again, with --step "
        "that step and every step after it.")
    resume.add_argument("run", nargs="?", help="name of the FlowRun (default: the flow's "
                        "newest run)")
    resume.add_argument("--step", help="run again from this step (default: the failed steps)")
    resume.add_argument("--namespace", help="namespace of the run (default: from the config)")
    _add_local_options(resume)
    logs = commands.add_parser(
        "logs", help="a task's logs, from the store (also after the pods are gone)",
        description="Prints the stdout (or stderr) of RUN/STEP/TASK, or of every task of "
        "RUN/STEP. RUN: a FlowRun name or a run id of this flow.")
    logs.add_argument("path", help="RUN/STEP or RUN/STEP/TASK")
    logs.add_argument("--stderr", action="store_true", help="stderr instead of stdout")
    logs.add_argument("--attempt", type=int, help="this attempt (default: the latest)")
    logs.add_argument("--local", action="store_true", help="a local run (the local store)")
    run = commands.add_parser(
        "run", allow_abbrev=False, help="deploy, start a run and follow it",
        description="Deploys the flow (as `deploy`: nothing is uploaded or applied when "
        "nothing changed), creates a FlowRun of it and prints each step's progress until "
        "the run ends. Exit code 0 when it Succeeded, 1 when it Failed or was Stopped.")
    _add_run_options(run, parameters, deploys=True)
    trigger = commands.add_parser(
        "trigger", allow_abbrev=False, help="start a run of the deployed flow and follow it",
        description="Creates a FlowRun of the Flow already deployed in the cluster (no "
        "deploy) and follows it like `run`.")
    _add_run_options(trigger, parameters, deploys=False)
    return parser


def _given_parameters(parameters: list[Parameter], args: argparse.Namespace) -> dict[str, str]:
    """``--<param>`` values given on the command line, by parameter name."""
    from kflow.exceptions import InvalidParameterException

    for param in parameters:
        if param.name in _RUN_OPTIONS:
            raise InvalidParameterException(
                f"Parameter '{param.name}' has the name of the option --{param.name} of "
                f"`{args.command}`", file=param.file, line=param.line,
                hint="Rename the parameter to give it a value on the command line.")
    values = vars(args)
    return {p.name: values[PARAM_DEST + p.name] for p in parameters
            if values.get(PARAM_DEST + p.name) is not None}


def _unknown_options(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     extras: list[str], parameters: list[Parameter]) -> NoReturn:
    """Exit 2 naming what was not understood and, on `run`/`trigger`, the allowed options."""
    if args.command not in RUN_COMMANDS:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    allowed = ", ".join(f"--{p.name}" for p in parameters if p.name not in _RUN_OPTIONS)
    parser.error(f"{args.command}: unknown option(s) {' '.join(extras)}; the flow's parameters "
                 f"are: {allowed or '(none)'} (see `{_prog()} {args.command} --help`)")


def checked_graph(flow_cls: type[FlowSpec]) -> FlowGraph:
    """The flow's graph, or SystemExit(1) after printing every problem found."""
    from kflow import graph as graph_module
    from kflow import lint

    graph = graph_module.build_graph(flow_cls)
    errors = lint.check(graph, flow_cls)
    if errors:
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        noun = "problem" if len(errors) == 1 else "problems"
        print(f"{flow_cls.__name__}: {len(errors)} {noun} found; nothing was run or deployed.",
              file=sys.stderr)
        raise SystemExit(1)
    return graph


def _show(graph: FlowGraph, fmt: str) -> None:
    from kflow import render

    if fmt == "json":
        print(json.dumps(render.to_json(graph), indent=2))
    else:
        print({"text": render.text, "mermaid": render.mermaid, "dot": render.dot}[fmt](graph))


def _launch(flow_cls: type[FlowSpec], args: argparse.Namespace, values: dict[str, str],
            flow: str | None = None, namespace: str | None = None) -> int:
    """Start a run of `flow` (deployed just now by `run`; `trigger`: the one in the
    cluster, which must exist) and follow it unless --detach."""
    from kflow import config, launch

    settings = config.load()
    user = config.local_user()
    namespace = namespace or args.namespace or settings.namespace
    api = launch.KubeRunsApi(settings)
    try:
        if flow is None:
            from kflow.manifest import flow_identity

            flow, _ = flow_identity(flow_cls, user)
            launch.require_flow(api, namespace, flow, _prog())
        request = launch.RunRequest(flow, namespace, user, values, args.tag,
                                    args.max_parallelism, args.name)
        return launch.launch(api, request, detach=args.detach, prog=_prog())
    finally:
        api.close()


def _newest_flowrun(flow_name: str, namespace: str | None) -> str:
    """The FlowRun name of the flow's newest run (for `resume` without a run)."""
    from kflow.client import Flow, KflowNotFound, Source, set_source

    if namespace:
        set_source(Source.from_config(namespace=namespace))
    try:
        newest = Flow(flow_name).latest_run
    except KflowNotFound as exc:
        raise KflowNotFound(f"{exc} Nothing to resume.") from None
    if newest is None or newest.flowrun is None:
        raise KflowNotFound(f"the newest run of {flow_name} has no FlowRun any more; name "
                            f"the run to resume (kflow runs {flow_name})")
    return newest.flowrun


def _check_local(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 for options that mean nothing to a local run."""
    if not getattr(args, "local", False) or args.command == "logs":
        return
    for option, why in (("detach", "the run lives in this process"),
                        ("image", "the tasks run in this Python environment")):
        if getattr(args, option, None):
            parser.error(f"{args.command}: --{option} does not apply to --local ({why})")


def _local_settings(args: argparse.Namespace) -> LocalSettings:
    from kflow.local import LocalSettings

    return LocalSettings(max_workers=args.max_workers or getattr(args, "max_parallelism",
                                                                 None) or 16,
                         namespace=args.namespace, tags=tuple(getattr(args, "tag", ())),
                         run_id=getattr(args, "name", None), prog=_prog(),
                         package_include=tuple(getattr(args, "package_include", ())))


def _run(flow_cls: type[FlowSpec], args: argparse.Namespace,
         parameters: list[Parameter]) -> int:
    command = args.command or "check"
    if command == "resume" and args.local:
        from kflow.hybrid import pod_steps
        from kflow.local import LocalRunError, resume_local

        graph = checked_graph(flow_cls)
        if steps := pod_steps(flow_cls, graph):
            raise LocalRunError(
                f"{flow_cls.__name__} runs {', '.join(steps)} as pods (@batch/@kubernetes), "
                "so its local runs are hybrid runs, and a hybrid run cannot be resumed yet: "
                f"start a new one (python {_prog()} run --local)")
        return int(resume_local(flow_cls, graph, args.run, args.step, _local_settings(args)))
    if command == "resume":
        from kflow import submit

        name = args.run or _newest_flowrun(flow_cls.__name__, args.namespace)
        print(submit.resume_run(name, step=args.step, namespace=args.namespace).describe())
        return 0
    if command == "logs":
        from kflow import history

        if args.local:
            from kflow.client import Source, set_source

            set_source(Source.local())
        sys.stdout.write(history.task_logs(f"{flow_cls.__name__}/{args.path}",
                                           "stderr" if args.stderr else "stdout",
                                           args.attempt))
        return 0
    values: dict[str, str] = {}
    if command in RUN_COMMANDS:  # before any deploy: a bad value changes nothing
        from kflow import launch

        values = launch.parameter_values(parameters, _given_parameters(parameters, args),
                                         os.environ)
    if command == "trigger":
        return _launch(flow_cls, args, values)
    graph = checked_graph(flow_cls)
    if command == "run" and args.local:
        from kflow.hybrid import pod_steps, run_hybrid
        from kflow.local import run_local

        if steps := pod_steps(flow_cls, graph):       # @batch / @kubernetes: pods
            return int(run_hybrid(flow_cls, graph, values, _local_settings(args), steps))
        return int(run_local(flow_cls, graph, values, _local_settings(args)))
    if command == "run" and args.max_parallelism is None:
        args.max_parallelism = args.max_workers
    if command == "check":
        print(f"{flow_cls.__name__}: the graph is valid ({len(graph.steps)} steps).")
        return 0
    if command == "show":
        _show(graph, args.format)
        return 0
    from kflow import packaging

    package = packaging.build_package(Path(graph.file), args.package_include)
    for warning in package.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if command == "package":
        if args.output:
            Path(args.output).write_bytes(package.data)
        print(f"{package.sha256}  {len(package.files)} files, {package.size} bytes")
        return 0
    from kflow import api_types, deploy, submit

    with submit.api_errors(f"deploying {flow_cls.__name__}", action="apply",
                           plural=api_types.FLOW_PLURAL):
        result = deploy.deploy(flow_cls, graph, package, namespace=args.namespace,
                               image=args.image, dry_run=getattr(args, "dry_run", False))
    print(result.describe(), flush=True)
    if command == "run":
        return _launch(flow_cls, args, values, result.name, result.namespace)
    return 0


def main(flow_cls: type[FlowSpec], argv: Sequence[str] | None = None) -> NoReturn:
    """Run one flow-file command and exit."""
    from kflow.config import ConfigError
    from kflow.exceptions import KflowException
    from kflow.parameters import flow_parameters

    parameters = [param for _, param in flow_parameters(flow_cls)]
    parser = _parser(flow_cls.__name__, parameters)
    args, extras = parser.parse_known_args(argv)
    if extras:
        _unknown_options(parser, args, extras, parameters)
    _check_local(parser, args)
    try:
        code = _run(flow_cls, args, parameters)
    except (KflowException, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
