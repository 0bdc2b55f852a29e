"""A hybrid run: `python flow.py run --local` of a flow with ``@batch`` / ``@kubernetes`` steps.

Owns putting a hybrid run together. Those steps run as step pods on the cluster (the
operator's own pod builder: same image, resources, retries, failure reasons), every
other step as a local runner process, and all of them read and write the object
store the cluster uses (S3), so each side sees the other's artifacts. In order:

1. the configuration (object store and cluster required: the error says what to set);
2. the flow deployed as `python flow.py deploy` does (code package uploaded, Flow
   applied): the pods run that package, the local tasks the flow's folder, which is
   the same code (same sha256);
3. a FlowRun with ``spec.driver: Local`` (`kflow.api_types.DRIVER_LOCAL`), so the run
   is recorded like any other (``kubectl get flowruns``, the client API, its pods owned
   by it) while the operator leaves it to this process;
4. the loop (`kflow.local.session.drive_to_end`) over a `RoutingExecutor` of a
   `PodExecutor` and a `ProcessExecutor`, writing the planner's status to the FlowRun
   as the operator would.

Ctrl-C stops the run as a local run does (its pods are deleted); so does ``spec.stop:
true`` on its FlowRun (`kubectl patch`), watched here. This process reports in the
FlowRun's ``status.driver`` every few seconds; if it dies, the operator fails the run
(``DriverLost``) once it has been silent for its driver timeout, and stops its pods.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from kflow import api_types
from kflow.api_types import FailureReason
from kflow.local.executor import RunLaunch, step_launches
from kflow.local.session import (
    STOP_GRACE_SECONDS,
    LocalRunError,
    LocalSettings,
    drive_to_end,
    package_flow,
)
from kflow.planning.run import format_time

if TYPE_CHECKING:
    from kflow.config import KflowConfig, S3Settings
    from kflow.flowspec import FlowSpec
    from kflow.graph import FlowGraph

__all__ = ["POD_DECORATORS", "pod_steps", "run_hybrid", "s3_env"]

POD_DECORATORS = frozenset({"batch", "kubernetes"})
HEARTBEAT_SECONDS = 10.0      # status.driver.heartbeatAt; the operator's limit is 120 s

log = logging.getLogger(__name__)


def pod_steps(flow_cls: type[FlowSpec], graph: FlowGraph) -> list[str]:
    """The steps of the flow that run as pods in a local run (``@batch``,
    ``@kubernetes``), in graph order."""
    found = []
    for name in graph.steps:
        decorators = getattr(getattr(flow_cls, name, None), "decorators", None) or []
        if any(getattr(d, "name", None) in POD_DECORATORS for d in decorators):
            found.append(name)
    return found


def s3_env(s3: S3Settings) -> dict[str, str]:
    """The store settings a local task of a hybrid run gets: the S3 server as seen from
    this machine."""
    return {"KFLOW_S3_ENDPOINT": str(s3.endpoint), "KFLOW_S3_ACCESS_KEY": str(s3.access_key),
            "KFLOW_S3_SECRET_KEY": str(s3.secret_key), "KFLOW_S3_BUCKET": s3.bucket,
            "KFLOW_S3_REGION": s3.region}


def _settings(steps: list[str]) -> KflowConfig:
    from kflow import config

    settings = config.load()
    try:
        settings.require_s3()
    except config.ConfigError as exc:
        raise LocalRunError(f"{', '.join(steps)} run(s) on the cluster (@batch/@kubernetes), "
                            f"so this run needs the cluster's object store: {exc}") from None
    return settings


def run_hybrid(flow_cls: type[FlowSpec], graph: FlowGraph, parameters: Mapping[str, str],
               settings: LocalSettings, steps: list[str], out: TextIO | None = None,
               err: TextIO | None = None) -> int:
    """Run the flow here, its `steps` as pods on the cluster; the exit code."""
    from kflow import deploy, kube, launch, submit
    from kflow_operator.k8s import KubeError

    out, err = out or sys.stdout, err or sys.stderr
    cfg = _settings(steps)
    namespace = settings.namespace or cfg.namespace
    package = package_flow(graph, settings, err)
    with submit.api_errors(f"deploying {graph.name}", action="apply",
                           plural=api_types.FLOW_PLURAL):
        deployed = deploy.deploy(flow_cls, graph, package, namespace=namespace, settings=cfg)
    print(deployed.describe(), file=out, flush=True)

    api = kube.api_client(cfg)
    runs = launch.KubeRunsApi(cfg)
    try:
        return _drive(graph, parameters, settings, steps, cfg, api, runs, deployed, package,
                      out, err)
    except KubeError as exc:
        raise LocalRunError(f"the cluster: {exc}") from None
    finally:
        runs.close()
        api.close()


def _drive(graph: FlowGraph, parameters: Mapping[str, str], settings: LocalSettings,
           steps: list[str], cfg: KflowConfig, api: Any, runs: Any, deployed: Any,
           package: Any, out: TextIO, err: TextIO) -> int:
    """Create the FlowRun and drive it (see the module docstring)."""
    from kflow import config, launch
    from kflow.hybrid.pods import PodExecutor
    from kflow.hybrid.routing import RoutingExecutor
    from kflow.local.processes import ProcessExecutor
    from kflow.planning import FlowModel, RunModel
    from kflow_operator.flowstatus import status_patch
    from kflow_operator.k8s import KubernetesKubeApi
    from kflow_operator.settings import from_env

    namespace, user, flow_path = deployed.namespace, config.local_user(), Path(graph.file)
    body = launch.flowrun_body(launch.RunRequest(
        deployed.name, namespace, user, parameters, settings.tags, settings.max_workers,
        settings.run_id))
    body["spec"]["driver"] = api_types.DRIVER_LOCAL
    run = runs.create_run(body)
    kube = KubernetesKubeApi(api)
    flow = kube.get_flow(namespace, deployed.name)
    if flow is None:
        raise LocalRunError(f"Flow {deployed.name} vanished from namespace {namespace} "
                            "right after it was deployed; run again")
    spec = flow.get("spec") or {}
    flow_model = FlowModel.from_spec(spec, int((flow.get("metadata") or {}).get(
        "generation") or 0))
    run_model = RunModel.from_cr(run)
    run_id = api_types.run_id(run)
    name = str(run["metadata"]["name"])
    local_launch = RunLaunch(
        flow_file=package.flow_file, code_dir=flow_path.absolute().parent,
        code_sha256=package.sha256, namespace=namespace, flow=graph.name, run_id=run_id,
        start_step=flow_model.start, parameters=dict(parameters),
        tags=tuple(dict.fromkeys(settings.tags)), user=user, steps=step_launches(spec))
    pod_config = from_env(os.environ).pod
    written: dict[str, Any] = dict(run.get("status") or {})
    stop, lost, ended = threading.Event(), threading.Event(), threading.Event()

    def save(status: Mapping[str, Any]) -> None:
        if lost.is_set():             # the operator failed the run (DriverLost): its word
            return
        kube.patch_flowrun_status(namespace, name, status_patch(written, status))
        written.clear()
        written.update(status)

    def executor_for(echo: Any) -> RoutingExecutor:
        local = ProcessExecutor(local_launch, s3_env(cfg.s3), work, echo=echo,
                                stop_grace=STOP_GRACE_SECONDS)
        pods = PodExecutor(api, flow, run, pod_config, on_change=local.wake)
        for target, args in ((_watch_stop, (runs, namespace, name, stop, lost, ended,
                                             local.wake)),
                             (_heartbeat, (kube, namespace, name, ended))):
            threading.Thread(target=target, args=args, daemon=True).start()
        return RoutingExecutor(steps, pods, local)

    header = [f"Hybrid run {graph.name}/{run_id} started (FlowRun {namespace}/{name}):"
              f" {', '.join(steps)} as pods on the cluster, the other steps here, "
              f"at most {run_model.max_parallelism or settings.max_workers} tasks at once"]
    work = Path(tempfile.mkdtemp(prefix="kflow-hybrid-"))
    try:
        return drive_to_end(flow_model, run_model, executor_for, origin=(), save=save,
                            header=header,
                            outcome=lambda final: _outcome(graph.name, run_id, name,
                                                           namespace, final,
                                                           settings.prog),
                            out=out, err=err, stop=stop)
    finally:
        ended.set()
        shutil.rmtree(work, ignore_errors=True)


def _watch_stop(runs: Any, namespace: str, name: str, stop: threading.Event,
                lost: threading.Event, ended: threading.Event,
                wake: Callable[[], None]) -> None:
    """Set `stop` (and wake the loop) once the FlowRun gets ``spec.stop: true``
    (`kubectl patch ... stop`, as for any run), or the operator failed it because this
    driver was silent too long (then `lost` too: nothing more is written). Until the
    run `ended`; a broken watch is started again a second later."""
    version: str | None = None
    while not (stop.is_set() or ended.is_set()):
        try:
            for _, body in runs.watch_run(namespace, name, version):
                version = (body.get("metadata") or {}).get("resourceVersion") or version
                failure = ((body.get("status") or {}).get("failure") or {}).get("reason")
                if failure == FailureReason.DRIVER_LOST.value:
                    lost.set()
                if (body.get("spec") or {}).get("stop") or lost.is_set():
                    stop.set()
                    wake()
                    return
        except Exception as exc:      # the network, an expired version: watch again
            log.debug("watching FlowRun %s/%s: %s", namespace, name, exc)
            version = None
            ended.wait(1.0)


def _heartbeat(writer: Any, namespace: str, name: str, ended: threading.Event) -> None:
    """Report this process in the FlowRun's ``status.driver`` every
    ``$KFLOW_DRIVER_HEARTBEAT_SECONDS`` (default 10) until the run ended; the operator
    fails a run whose driver stays silent (`kflow_operator.driver`)."""
    every = float(os.environ.get("KFLOW_DRIVER_HEARTBEAT_SECONDS") or HEARTBEAT_SECONDS)
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    while not ended.is_set():
        try:
            writer.patch_flowrun_status(namespace, name, {api_types.DRIVER_STATUS: {
                **me, "heartbeatAt": format_time(datetime.now(UTC))}})
        except Exception as exc:      # a blip: the next beat tries again
            log.debug("heartbeat of FlowRun %s/%s: %s", namespace, name, exc)
        ended.wait(every)


def _outcome(flow: str, run_id: str, name: str, namespace: str, status: Mapping[str, Any],
             prog: str) -> list[str]:
    from kflow.local.report import INDENT, outcome_lines

    lines = [line for line in outcome_lines(flow, run_id, status, prog)
             if "resume --local" not in line]
    lines = [line.replace(f"logs --local {run_id}", f"logs {run_id}") for line in lines]
    lines.append(f"{INDENT}FlowRun: kubectl get flowrun {name} -n {namespace}")
    return lines
