"""The flow file's command line: `python flow.py check | show | deploy | package | resume`.

Owns: parsing the flow-file commands and their exit codes. Instantiating a
FlowSpec subclass under `__main__` lands here (`FlowSpec.__init__` calls
`main`). Each command is a thin call: the graph comes from `kflow.graph`, the
checks from `kflow.lint`, pictures from `kflow.render`, the code package from
`kflow.packaging`, deployment from `kflow.deploy`, and an in-place resume from
`kflow.submit` (which does not need the flow to be valid: it only patches the run).

Exit codes: 0 on success, 1 when the flow is invalid or a command fails
(each error says what, where and what to do), 2 on bad command-line usage.
Running the file with no command checks it, like Metaflow.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from kflow.flowspec import FlowSpec
    from kflow.graph import FlowGraph


def _parser(flow_name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "flow.py",
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
    resume.add_argument("run", help="name of the FlowRun")
    resume.add_argument("--step", help="run again from this step (default: the failed steps)")
    resume.add_argument("--namespace", help="namespace of the run (default: from the config)")
    return parser


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


def _run(flow_cls: type[FlowSpec], args: argparse.Namespace) -> int:
    command = args.command or "check"
    if command == "resume":
        from kflow import submit

        print(submit.resume_run(args.run, step=args.step, namespace=args.namespace).describe())
        return 0
    graph = checked_graph(flow_cls)
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
    from kflow import deploy

    result = deploy.deploy(flow_cls, graph, package, namespace=args.namespace,
                           image=args.image, dry_run=args.dry_run)
    print(result.describe())
    return 0


def main(flow_cls: type[FlowSpec], argv: Sequence[str] | None = None) -> NoReturn:
    """Run one flow-file command and exit."""
    from kflow.config import ConfigError
    from kflow.exceptions import KflowException

    args = _parser(flow_cls.__name__).parse_args(argv)
    try:
        code = _run(flow_cls, args)
    except (KflowException, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
