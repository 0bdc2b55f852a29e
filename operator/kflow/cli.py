"""The `kflow` command line.

Owns: argument parsing and exit codes of `kflow ...`. Each sub-command is a
thin call into the package that does the work (`kflow.cluster`, `kflow.history`).

    kflow cluster up      [--dir D | --name N] [--image-map FILE]
    kflow cluster down    [--dir D | --name N] [--purge]
    kflow cluster status  [--dir D | --name N]
    kflow cluster env     [--dir D | --name N]     # eval "$(kflow cluster env)"
    kflow cluster build                            # build/cache the binaries only
    kflow kubectl [--dir D | --name N] -- ARGS     # kubectl of the cluster's version
    kflow configure [--s3-endpoint URL ...] [--show]   # write ~/.kflow/config.yaml
    kflow runs [FLOW] [--limit N]                  # newest runs: status, duration, user
    kflow describe RUN                             # a run, its steps and failures
    kflow logs RUN/STEP[/TASK] [--stderr] [--attempt K]   # from the store

RUN is a FlowRun name, a run id or Flow/run_id; history commands read the cluster
and the object store configured by `kflow configure` / `kflow cluster env`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from kflow import config
from kflow.cluster import binaries, supervisor
from kflow.exceptions import KflowException


def _cluster_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else supervisor.default_dir(args.name)


def _add_dir_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="the cluster's folder (default: $KFLOW_CLUSTER_DIR "
                        "or ~/.kflow/clusters/NAME)")
    parser.add_argument("--name", default="default", help="the cluster's name (default: "
                        "%(default)s); two names give two clusters side by side")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kflow", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    cluster = commands.add_parser("cluster", help="the embedded local Kubernetes cluster")
    actions = cluster.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start the cluster (or report the running one)")
    _add_dir_options(up)
    up.add_argument("--image-map", help="YAML file mapping images to local commands "
                    "(default: $KFLOW_IMAGE_MAP); see kflow.cluster.node.images")
    down = actions.add_parser("down", help="stop every process the cluster started")
    _add_dir_options(down)
    down.add_argument("--purge", action="store_true", help="also delete the cluster's folder")
    for name, text in (("status", "each component's health"),
                       ("env", "shell exports for the running cluster")):
        _add_dir_options(actions.add_parser(name, help=text))
    actions.add_parser("build", help="build (once) and cache the control-plane binaries")

    configure = commands.add_parser(
        "configure", help="write kflow's config file (object store, cluster, namespace, image)",
        description="Writes (or updates) the config file: $KFLOW_CONFIG, else "
        "~/.kflow/config.yaml. Only the options given change. Secrets are never printed.")
    configure.add_argument("--file", help="the config file to write (default: %(default)s)",
                           default=str(config.default_path()))
    configure.add_argument("--s3-endpoint", help="S3 endpoint URL as seen from here")
    configure.add_argument("--s3-pod-endpoint", help="S3 endpoint URL as seen from step pods")
    configure.add_argument("--s3-bucket")
    configure.add_argument("--s3-region")
    configure.add_argument("--s3-access-key")
    configure.add_argument("--s3-secret-key-stdin", action="store_true",
                           help="read the S3 secret key from standard input (one line)")
    configure.add_argument("--kubeconfig")
    configure.add_argument("--context", help="kubeconfig context")
    configure.add_argument("--namespace", help="namespace of Flows and FlowRuns")
    configure.add_argument("--image", help="default image of step pods")
    configure.add_argument("--show", action="store_true",
                           help="print the effective configuration (secrets masked)")

    runs = commands.add_parser("runs", help="the newest runs (of FLOW, or of every flow)")
    runs.add_argument("flow", nargs="?", help="a flow's class name, e.g. TrainFlow")
    runs.add_argument("--limit", type=int, default=20, help="how many (default %(default)s)")
    describe = commands.add_parser("describe", help="a run: status, parameters, steps, "
                                   "failures")
    describe.add_argument("run", help="a FlowRun name, a run id or Flow/run_id")
    logs = commands.add_parser("logs", help="a task's logs, from the store")
    logs.add_argument("path", help="RUN/STEP or RUN/STEP/TASK")
    logs.add_argument("--stderr", action="store_true", help="stderr instead of stdout")
    logs.add_argument("--attempt", type=int, help="this attempt (default: the latest)")

    kubectl = commands.add_parser("kubectl", help="run kubectl against the embedded cluster")
    _add_dir_options(kubectl)
    kubectl.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _cluster(args: argparse.Namespace) -> int:
    if args.action == "build":
        bins = binaries.resolve(sys.stderr)
        for name in ("etcd", "kube_apiserver", "kube_controller_manager", "kube_scheduler",
                     "kubectl"):
            print(f"{name.replace('_', '-')}: {getattr(bins, name)}")
        return 0
    directory = _cluster_dir(args)
    if args.action == "up":
        image_map = args.image_map or os.environ.get("KFLOW_IMAGE_MAP")
        report = supervisor.up(directory, image_map=image_map)
        _write_cluster_config(report)
        print(report.describe())
        print(f"  kflow config: {cluster_config_path(report)}  "
              f"(eval \"$(kflow cluster env --dir {report.layout.dir})\" uses it)")
        return 0
    if args.action == "down":
        survivors = supervisor.down(directory, purge=args.purge)
        if survivors:
            print("could not stop: " + ", ".join(survivors), file=sys.stderr)
            return 1
        print(f"kflow cluster at {directory} is down" + (" and deleted" if args.purge else ""))
        return 0
    if args.action == "status":
        healthy, rows = supervisor.status(directory)
        width = max(len(r[0]) for r in rows)
        for name, pid, state in rows:
            print(f"{name:<{width}}  {pid:>7}  {state}")
        return 0 if healthy else 1
    report = supervisor.load_report(directory)
    print(f"export KUBECONFIG={shlex.quote(str(report.layout.kubeconfig))}")
    print(f"export KFLOW_CONFIG={shlex.quote(str(cluster_config_path(report)))}")
    return 0


def cluster_config_path(report: supervisor.Report) -> Path:
    """The kflow config file matching an embedded cluster (in its folder)."""
    return report.layout.dir / "config.yaml"


def _write_cluster_config(report: supervisor.Report) -> None:
    """kflow's config for the embedded cluster: its S3 server, kubeconfig, namespace."""
    creds = report.layout.s3_credentials
    settings = config.from_environment({"KFLOW_S3_CREDENTIALS": str(creds),
                                        "KUBECONFIG": str(report.layout.kubeconfig)})
    config.write(cluster_config_path(report), settings)


def _configure(args: argparse.Namespace) -> int:
    path = Path(args.file).expanduser()
    if args.show:
        print(config.load(path if path.exists() else None).describe())
        return 0
    secret = sys.stdin.readline().strip() if args.s3_secret_key_stdin else None
    updated = config.merged_file_config(path, {
        "endpoint": args.s3_endpoint, "pod_endpoint": args.s3_pod_endpoint,
        "bucket": args.s3_bucket, "region": args.s3_region, "access_key": args.s3_access_key,
        "secret_key": secret, "kubeconfig": args.kubeconfig, "context": args.context,
        "namespace": args.namespace, "image": args.image,
    })
    config.write(path, updated)
    print(f"wrote {path}\n{updated.describe()}")
    return 0


def _kubectl(args: argparse.Namespace) -> int:
    report = supervisor.load_report(_cluster_dir(args))
    kubectl = report.state.kubectl
    argv = args.args[1:] if args.args[:1] == ["--"] else args.args
    os.execvp(kubectl, [kubectl, f"--kubeconfig={report.layout.kubeconfig}", *argv])


def _history(args: argparse.Namespace) -> int:
    from kflow import history

    if args.command == "runs":
        print(history.runs_table(history.runs_rows(args.flow, args.limit)))
    elif args.command == "describe":
        print(history.describe_text(history.details(history.find_run(args.run))))
    else:
        sys.stdout.write(history.task_logs(args.path, "stderr" if args.stderr else "stdout",
                                           args.attempt))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kflow` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "cluster":
            return _cluster(args)
        if args.command == "configure":
            return _configure(args)
        if args.command in ("runs", "describe", "logs"):
            return _history(args)
        return _kubectl(args)
    except (supervisor.ClusterError, binaries.BuildError, config.ConfigError,
            KflowException) as exc:
        print(f"kflow: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
