"""Orchestration overhead: kflow's operator on the embedded cluster against Metaflow's local `run`.

    .venv/bin/python bench/scheduling.py            # ~10-12 min on 2 cores
    .venv/bin/python bench/scheduling.py --quick    # smoke, ~4 min

What is measured, all in one run of this script:

- transition (the headline): for every task, its pod's `kflow.dev/created-at`
  annotation (the operator's clock just before the create call, ms) minus the
  latest runner `finishedAt` of its parent tasks (the runner's own clock, ms, from
  the parent pod's termination message). Kubernetes' timestamps have 1 s
  resolution, so only kflow's ms clocks are used. It covers the kubelet reporting
  the parent's exit, the watch event, the operator's reconcile and planning, and
  the create call's preparation. A foreach body task that waited for a free slot
  (maxParallelism, 16 by default) counts from the finish that freed its slot
  (the later of its parents' finish and the k-th finish of the run's earlier
  tasks), so queueing behind the cap is not counted as overhead; the raw
  `created-at - kflow.dev/ready-at` (the operator's own reading) is recorded too.
  The headline (the issue's "per step transition", target p95 < 250 ms, reported,
  never asserted) is over the *step* transitions of every kflow run of both flows:
  a child pod after its parents (linear, a foreach body after its split, a join);
  a `slot` refill (a task of the same step that waited for a free slot) is
  reported apart, and with everything ("every pod").
- step gap, both systems: a parent's user code end -> its child's user code start
  (kflow: the runner's `userFinishedAt` / `userStartedAt`; Metaflow: the flow's own
  `time.time()` marks, BENCH_MARKS). For kflow that is persist + transition + pod
  start + runner preparation; for Metaflow its local runtime's task launch.
- wall time of a 3-step linear flow (`bench/flows/*/linear3.py`) and a 100-way
  foreach (`foreach100.py`: start -> body x100 -> join -> end) end to end:
  kflow = FlowRun created -> phase Succeeded seen by a watch (the flow deployed
  before); Metaflow = `python flow.py run` (local metadata), local datastore and
  S3 datastore (the cluster's own SeaweedFS, the store kflow's pods use).
  Ratios: kflow / Metaflow (> 1: kflow slower). Metaflow's S3 mode runs
  --s3-repeats times (1: ~2 s per task here, a 100-way foreach takes minutes).
- operator peak RSS with --concurrent (100) FlowRuns of linear3 submitted at once:
  the operator process' RSS sampled every 100 ms and its VmHWM, from start to the
  last run finished; the wall time of all of them; transitions under that load.

The flows in bench/flows/kflow/ are those in bench/flows/metaflow/ with `from kflow
import` for `from metaflow import` (checked). The script starts its own embedded
cluster (`kflow.cluster.supervisor.up` in a tmp dir), installs the CRDs, creates the
step pods' ServiceAccount and S3 Secret as docs/operator.md says, runs
`python -m kflow_operator --namespace bench`, deploys with `python flow.py deploy`,
and stops everything at the end (then checks that no process of its tmp dir is left).

Results go to bench/results/scheduling.json. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psutil
from kubernetes import client, config, watch

from artifacts import (
    BackgroundLoop,
    check_twins,
    clean_env,
    metaflow_args,
    metaflow_python,
    package_version,
    step_gaps,
)
from kflow import api_types
from kflow.cluster import s3, supervisor
from kflow.cluster.components import Layout
from kflow.manifest import resource_name

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FLOWS = BENCH / "flows"
RESULTS = BENCH / "results" / "scheduling.json"
NAMESPACE = "bench"
SCENARIOS = {  # name -> (flow file, flow class, FlowRun parameters / Metaflow options)
    "linear3": ("linear3.py", "Linear3Flow"),
    "foreach100": ("foreach100.py", "Foreach100Flow"),
}
MODES = ("local", "s3")
RUN_TIMEOUT_S = 600.0
RSS_POLL_S = 0.1
READY_AT = "kflow.dev/ready-at"
CREATED_AT = "kflow.dev/created-at"
TERMINAL = ("Succeeded", "Failed", "Stopped")
MB = 1024 * 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95),
            "max": max(values), "mean": statistics.fmean(values), "n": len(values)}


def epoch(text: str | None) -> float | None:
    """RFC 3339 (ms) → epoch seconds."""
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ------------------------------------------------------------ cluster, operator


@dataclass
class Kube:
    """The embedded cluster as this script uses it."""

    directory: Path
    kubeconfig: Path
    kubectl_path: str
    s3_credentials: Path
    core: client.CoreV1Api
    custom: client.CustomObjectsApi

    def kubectl(self, *args: str) -> str:
        done = subprocess.run([self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)}: {done.stderr}")
        return done.stdout


@contextlib.contextmanager
def embedded_cluster(directory: Path) -> Iterator[Kube]:
    started = time.monotonic()
    try:
        report = supervisor.up(directory)
        print(f"cluster up in {time.monotonic() - started:.1f}s", flush=True)
        api = config.new_client_from_config(config_file=str(report.layout.kubeconfig))
        yield Kube(directory, report.layout.kubeconfig, report.state.kubectl,
                   Layout(directory).s3_credentials, client.CoreV1Api(api),
                   client.CustomObjectsApi(api))
    finally:
        survivors = supervisor.down(directory)
        if survivors:
            print(f"WARNING: cluster processes survived `down`: {survivors}", flush=True)


def prepare_namespace(kube: Kube) -> None:
    """CRDs, the namespace, and the step pods' prerequisites (docs/operator.md)."""
    kube.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    for plural in (api_types.FLOW_PLURAL, api_types.FLOWRUN_PLURAL):
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     f"crd/{plural}.{api_types.GROUP}")
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    deadline = time.monotonic() + 60
    while not kube.core.list_namespaced_service_account(NAMESPACE).items:
        if time.monotonic() > deadline:
            raise SystemExit("no default ServiceAccount in the bench namespace")
        time.sleep(0.1)
    kube.core.create_namespaced_service_account(NAMESPACE, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="kflow-step"), automount_service_account_token=False))
    creds = s3.read_credentials_file(kube.s3_credentials)
    kube.core.create_namespaced_secret(NAMESPACE, client.V1Secret(
        metadata=client.V1ObjectMeta(name="kflow-s3"), string_data={
            "KFLOW_S3_ENDPOINT": creds.endpoint, "KFLOW_S3_ACCESS_KEY": creds.access_key,
            "KFLOW_S3_SECRET_KEY": creds.secret_key, "KFLOW_S3_BUCKET": creds.bucket,
            "KFLOW_S3_REGION": creds.region}))


@contextlib.contextmanager
def running_operator(kube: Kube, work: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m kflow_operator --namespace bench`, alive (liveness 200) until the end."""
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig),
           "KFLOW_STEP_CODE_CACHE": str(work / "code-cache"),
           "KFLOW_METRICS_PORT": str(free_port())}
    log = work / "operator.log"
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "kflow_operator", "--namespace",
                                    NAMESPACE, "--liveness", liveness],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the operator exited ({process.returncode}); see {log}")
            with contextlib.suppress(urllib.error.URLError, OSError), \
                    urllib.request.urlopen(liveness, timeout=1) as answer:
                if answer.status == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"the operator is not alive after 60 s; see {log}")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def deploy(kube: Kube, flow_file: str, flow_class: str | None = None) -> str:
    """`python flow.py deploy` of bench/flows/kflow/<flow_file>; the Flow's name."""
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig), "KFLOW_NAMESPACE": NAMESPACE,
           "KFLOW_S3_CREDENTIALS": str(kube.s3_credentials), "KFLOW_CONFIG": ""}
    done = subprocess.run([sys.executable, str(FLOWS / "kflow" / flow_file), "deploy"],
                          env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"deploy {flow_file} failed:\n{done.stderr}")
    return resource_name(flow_class or SCENARIOS[Path(flow_file).stem][1])


# ----------------------------------------------------------------- kflow runs


def create_run(kube: Kube, name: str, flow: str, parameters: dict[str, str]) -> None:
    body = {"apiVersion": api_types.API_VERSION, "kind": "FlowRun",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"flowRef": {"name": flow}, "parameters": parameters}}
    kube.custom.create_namespaced_custom_object(api_types.GROUP, api_types.VERSION, NAMESPACE,
                                                api_types.FLOWRUN_PLURAL, body)


def wait_runs(kube: Kube, names: set[str], operator: subprocess.Popen[bytes],
              timeout: float = RUN_TIMEOUT_S) -> dict[str, tuple[str, float]]:
    """name → (terminal phase, time.time() when this process saw it), by a watch."""
    seen: dict[str, tuple[str, float]] = {}
    deadline = time.monotonic() + timeout
    stream = watch.Watch()
    while len(seen) < len(names):
        if time.monotonic() > deadline:
            raise SystemExit(f"runs not finished after {timeout:.0f}s: {names - seen.keys()}")
        if operator.poll() is not None:
            raise SystemExit(f"the operator exited ({operator.returncode})")
        for event in stream.stream(kube.custom.list_namespaced_custom_object, api_types.GROUP,
                                   api_types.VERSION, NAMESPACE, api_types.FLOWRUN_PLURAL,
                                   timeout_seconds=5):
            run = event["object"]
            name = run["metadata"]["name"]
            phase = (run.get("status") or {}).get("phase")
            if name in names and name not in seen and phase in TERMINAL:
                seen[name] = (phase, time.time())
                if len(seen) == len(names):
                    stream.stop()
                    break
    return seen


@dataclass
class Task:
    step: str
    task: str
    attempt: int
    ready_at: float | None
    created_at: float | None
    at: dict[str, float]


def run_tasks(kube: Kube, run: str) -> list[Task]:
    """Every step pod of `run`: the operator's annotations and the runner's clock."""
    pods = kube.core.list_namespaced_pod(
        NAMESPACE, label_selector=f"{api_types.LABEL_RUN}={run}").items
    tasks = []
    for pod in pods:
        meta = pod.metadata
        labels = (meta.labels if meta else None) or {}
        notes = (meta.annotations if meta else None) or {}
        at: dict[str, float] = {}
        for status in (pod.status.container_statuses or []) if pod.status else []:
            terminated = status.state.terminated if status.state else None
            if terminated is not None and terminated.message:
                with contextlib.suppress(ValueError):
                    at = json.loads(terminated.message).get("at") or {}
        tasks.append(Task(labels[api_types.LABEL_STEP], labels[api_types.LABEL_TASK],
                          int(labels[api_types.LABEL_ATTEMPT]), epoch(notes.get(READY_AT)),
                          epoch(notes.get(CREATED_AT)), at))
    return tasks


def parents_of(flow: dict[str, Any]) -> dict[str, list[str]]:
    """step → the steps whose `next` names it (from the deployed Flow's spec)."""
    parents: dict[str, list[str]] = {}
    for step in flow["spec"]["steps"]:
        for child in step.get("next") or []:
            parents.setdefault(child, []).append(step["name"])
    return parents


def foreach_steps(flow: dict[str, Any]) -> set[str]:
    """The steps that split into a foreach."""
    return {s["name"] for s in flow["spec"]["steps"] if s.get("type") == "split-foreach"}


KINDS = ("linear", "fanout", "join", "slot")
STEP_KINDS = ("linear", "fanout", "join")
"""Step transitions (the issue's target): a child pod after its parents finished. A
`slot` refill is a task of the same step waiting for one of maxParallelism's slots."""


@dataclass
class Transitions:
    to_create: list[float] = field(default_factory=list)      # headline, see module doc
    by_kind: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    ready_to_create: list[float] = field(default_factory=list)  # created-at - ready-at
    step_gap: list[float] = field(default_factory=list)        # user end → child user start
    slot_waits: int = 0                                        # tasks that waited for a slot
    missing: int = 0                                           # tasks without the clocks


def transitions(tasks: list[Task], parents: dict[str, list[str]], splits: set[str],
                cap: int) -> Transitions:
    """The transitions of one run (see the module docstring), also by kind: `linear`
    (one parent task), `fanout` (a foreach body task after its split; their pods are
    created one after another), `join` (several parent tasks), `slot` (a task that
    waited for one of the `cap` slots: from the finish that freed it)."""
    out = Transitions()
    by_step: dict[str, list[Task]] = {}
    for t in tasks:
        by_step.setdefault(t.step, []).append(t)
    finishes = sorted(t.at["finishedAt"] for t in tasks if "finishedAt" in t.at)
    created = sorted(t.created_at for t in tasks if t.created_at is not None)
    for t in tasks:
        if t.step not in parents:
            continue  # start: created on submission, no parent
        mine = [p for s in parents[t.step] for p in by_step.get(s, [])]
        if t.created_at is None or not mine or any("finishedAt" not in p.at for p in mine):
            out.missing += 1
            continue
        ready = max(p.at["finishedAt"] for p in mine)
        # At most `cap` tasks pending or running: the k-th create (k >= cap) needed
        # k - cap + 1 earlier tasks finished.
        k = created.index(t.created_at)
        kind = ("join" if len(mine) > 1
                else "fanout" if any(s in splits for s in parents[t.step]) else "linear")
        if k >= cap and len(finishes) > k - cap and finishes[k - cap] > ready:
            ready = finishes[k - cap]
            out.slot_waits += 1
            kind = "slot"
        out.to_create.append(t.created_at - ready)
        out.by_kind[kind].append(t.created_at - ready)
        if t.ready_at is not None:
            out.ready_to_create.append(t.created_at - t.ready_at)
        ends = [p.at.get("userFinishedAt") for p in mine]
        if "userStartedAt" in t.at and all(e is not None for e in ends):
            out.step_gap.append(t.at["userStartedAt"] - max(e for e in ends if e is not None))
    return out


@dataclass
class KflowRun:
    scenario: str
    name: str
    wall_s: float
    phase: str
    tasks: int
    first_create_s: float | None   # FlowRun created → first pod's created-at
    span_s: float | None           # first pod's created-at → last runner finishedAt
    trans: Transitions


def run_kflow(kube: Kube, operator: subprocess.Popen[bytes], flows: dict[str, dict[str, Any]],
              scenario: str, name: str, parameters: dict[str, str]) -> KflowRun:
    flow = flows[scenario]
    started = time.time()
    create_run(kube, name, flow["metadata"]["name"], parameters)
    phase, seen = wait_runs(kube, {name}, operator)[name]
    tasks = run_tasks(kube, name)
    creates = [t.created_at for t in tasks if t.created_at is not None]
    ends = [t.at["finishedAt"] for t in tasks if "finishedAt" in t.at]
    return KflowRun(scenario, name, seen - started, phase, len(tasks),
                    min(creates) - started if creates else None,
                    max(ends) - min(creates) if creates and ends else None,
                    transitions(tasks, parents_of(flow), foreach_steps(flow), cap=16))


def delete_runs(kube: Kube) -> None:
    """Delete every FlowRun and wait for their pods to go (the operator drops the
    finalizers), so the next measurement starts from an empty namespace."""
    kube.custom.delete_collection_namespaced_custom_object(
        api_types.GROUP, api_types.VERSION, NAMESPACE, api_types.FLOWRUN_PLURAL)
    deadline = time.monotonic() + 180
    while kube.core.list_namespaced_pod(NAMESPACE).items:
        if time.monotonic() > deadline:
            print("WARNING: step pods still there 180 s after their runs were deleted")
            return
        time.sleep(0.5)


# -------------------------------------------------------------- Metaflow runs


@dataclass
class MetaflowRun:
    scenario: str
    mode: str
    wall_s: float
    step_gap: list[float]


def metaflow_store_env(kube: Kube, mode: str, s3_prefix: str) -> dict[str, str]:
    """Metaflow's datastore: local, or S3 on the cluster's server under `s3_prefix`."""
    if mode == "local":
        return {"METAFLOW_DEFAULT_DATASTORE": "local"}
    creds = s3.read_credentials_file(kube.s3_credentials)
    return {"METAFLOW_DEFAULT_DATASTORE": "s3",
            "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{creds.bucket}/{s3_prefix}",
            "METAFLOW_S3_ENDPOINT_URL": creds.endpoint,
            "AWS_ACCESS_KEY_ID": creds.access_key, "AWS_SECRET_ACCESS_KEY": creds.secret_key,
            "AWS_DEFAULT_REGION": creds.region, "AWS_EC2_METADATA_DISABLED": "true"}


def run_metaflow(mf: Path, mf_args: tuple[str, ...], kube: Kube, work: Path, scenario: str,
                 mode: str, label: str, options: list[str],
                 parents: dict[str, list[str]]) -> MetaflowRun:
    rundir = work / label
    rundir.mkdir()
    marks = rundir / "marks"
    env = clean_env({"BENCH_MARKS": str(marks), "METAFLOW_DEFAULT_METADATA": "local",
                     "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(rundir / "sysroot")}, rundir)
    env.update(metaflow_store_env(kube, mode, f"metaflow/{label}"))
    flow_file = FLOWS / "metaflow" / SCENARIOS[scenario][0]
    log = rundir / "run.log"
    with log.open("wb") as out:
        started = time.monotonic()
        done = subprocess.run([str(mf), str(flow_file), *mf_args, "run", *options], cwd=rundir,
                              env=env, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S)
        wall = time.monotonic() - started
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"Metaflow {label} failed ({done.returncode}):\n{tail}")
    return MetaflowRun(scenario, mode, wall, step_gaps(marks, parents))


# ------------------------------------------------------------ operator memory


@dataclass
class RssSampler(BackgroundLoop):
    """The operator's RSS every RSS_POLL_S, and its VmHWM (the kernel's peak)."""

    pid: int
    samples: list[tuple[float, float]] = field(default_factory=list)   # (t, MiB)
    hwm_mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        proc = psutil.Process(self.pid)
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error, OSError):
                self.samples.append((time.monotonic(), proc.memory_info().rss / MB))
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.hwm_mb = max(self.hwm_mb, int(line.split()[1]) / 1024)
            self._stop.wait(RSS_POLL_S)

    @property
    def peak_mb(self) -> float:
        return max((mb for _, mb in self.samples), default=0.0)


def concurrent_runs(kube: Kube, operator: subprocess.Popen[bytes],
                    flows: dict[str, dict[str, Any]], count: int) -> dict[str, Any]:
    """`count` FlowRuns of linear3 created at once; the operator's RSS until all finish."""
    flow = flows["linear3"]
    idle_mb = psutil.Process(operator.pid).memory_info().rss / MB
    names = {f"many-{i:03d}" for i in range(count)}
    with RssSampler(operator.pid) as sampler:
        started = time.time()
        for name in sorted(names):
            create_run(kube, name, flow["metadata"]["name"], {})
        submitted = time.time() - started
        seen = wait_runs(kube, names, operator, timeout=RUN_TIMEOUT_S * 2)
        finished = max(t for _, t in seen.values())
        time.sleep(2)  # the operator's last status writes and finalizer releases
    phases = [p for p, _ in seen.values()]
    parents = parents_of(flow)
    load = Transitions()
    for name in names:
        t = transitions(run_tasks(kube, name), parents, set(), cap=16)
        load.to_create += t.to_create
        load.ready_to_create += t.ready_to_create
        load.step_gap += t.step_gap
        load.missing += t.missing
    return {"runs": count, "flow": "linear3", "succeeded": phases.count("Succeeded"),
            "submit_s": submitted, "wall_all_s": finished - started,
            "operator_idle_rss_mb": idle_mb, "operator_peak_rss_mb": sampler.peak_mb,
            "operator_vmhwm_mb": sampler.hwm_mb,
            "operator_rss_end_mb": sampler.samples[-1][1] if sampler.samples else None,
            "transition_under_load_s": summary(load.to_create),
            "ready_to_create_under_load_s": summary(load.ready_to_create),
            "step_gap_under_load_s": summary(load.step_gap), "missing_clocks": load.missing}


# --------------------------------------------------------------------- main


def machine_facts(mf: Path) -> dict[str, Any]:
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "operator"],
                           capture_output=True, text=True).stdout.strip() != ""
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": next((line.split(":", 1)[1].strip()
                           for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name")), platform.processor()),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "metaflow": package_version(mf, "metaflow"),
        "commit": sha, "operator_tree_modified": dirty,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_avg_at_start": os.getloadavg(),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def report(kflow_runs: list[KflowRun], mf_runs: list[MetaflowRun],
           many: dict[str, Any] | None) -> dict[str, Any]:
    headline = Transitions()
    for r in kflow_runs:
        headline.to_create += r.trans.to_create
        for kind in KINDS:
            headline.by_kind[kind] += r.trans.by_kind[kind]
        headline.ready_to_create += r.trans.ready_to_create
        headline.missing += r.trans.missing
        headline.slot_waits += r.trans.slot_waits
    trans = summary(headline.to_create)
    steps = summary([x for k in STEP_KINDS for x in headline.by_kind[k]])
    out: dict[str, Any] = {
        "step_transition_s": steps,
        "transition_s": trans | {"slot_waits": headline.slot_waits,
                                 "missing_clocks": headline.missing},
        "transition_by_kind_s": {k: summary(v) for k, v in headline.by_kind.items()},
        "ready_to_create_s": summary(headline.ready_to_create),
        "target_p95_under_250ms": steps.get("p95", 1e9) < 0.25,
        "scenarios": {},
    }
    for scenario in SCENARIOS:
        mine = [r for r in kflow_runs if r.scenario == scenario]
        if not mine:
            continue
        s: dict[str, Any] = {"kflow": {
            "wall_s": statistics.median(r.wall_s for r in mine),
            "wall_s_all": [r.wall_s for r in mine],
            "first_create_s": statistics.median(r.first_create_s or 0.0 for r in mine),
            "span_s": statistics.median(r.span_s or 0.0 for r in mine),
            "tasks": mine[0].tasks, "phases": [r.phase for r in mine],
            "transition_s": summary([x for r in mine for x in r.trans.to_create]),
            "step_gap_s": summary([x for r in mine for x in r.trans.step_gap]),
        }}
        for mode in MODES:
            mf = [r for r in mf_runs if (r.scenario, r.mode) == (scenario, mode)]
            if mf:
                wall = statistics.median(r.wall_s for r in mf)
                s[f"metaflow_{mode}"] = {
                    "wall_s": wall, "wall_s_all": [r.wall_s for r in mf],
                    "step_gap_s": summary([x for r in mf for x in r.step_gap])}
                s[f"ratio_kflow_over_metaflow_{mode}"] = {
                    "wall": ratio(s["kflow"]["wall_s"], wall),
                    "step_gap_p50": ratio(s["kflow"]["step_gap_s"].get("p50"),
                                          s[f"metaflow_{mode}"]["step_gap_s"].get("p50"))}
        out["scenarios"][scenario] = s
    if many is not None:
        out["concurrent_runs"] = many
    return out


def print_summary(results: dict[str, Any]) -> None:
    t, r = results["transition_s"], results["ready_to_create_s"]
    st = results["step_transition_s"]
    print()
    print(f"step transitions (parent runner finished → child pod created-at; linear, fanout, "
          f"join), {st.get('n', 0)}: p50 {st.get('p50', 0) * 1000:.0f} ms  p95 "
          f"{st.get('p95', 0) * 1000:.0f} ms  max {st.get('max', 0) * 1000:.0f} ms  (target "
          f"p95 < 250 ms: {'met' if results['target_p95_under_250ms'] else 'NOT met'})")
    print(f"every pod, slot refills included, {t.get('n', 0)}: p50 "
          f"{t.get('p50', 0) * 1000:.0f} ms  p95 {t.get('p95', 0) * 1000:.0f} ms  max "
          f"{t.get('max', 0) * 1000:.0f} ms")
    for kind, k in results["transition_by_kind_s"].items():
        if k.get("n"):
            print(f"  {kind:<7} {k['n']:>4}: p50 {k['p50'] * 1000:5.0f} ms  p95 "
                  f"{k['p95'] * 1000:5.0f} ms  max {k['max'] * 1000:5.0f} ms")
    print(f"  operator's own ready-at → created-at: p50 {r.get('p50', 0) * 1000:.0f} ms  "
          f"p95 {r.get('p95', 0) * 1000:.0f} ms")
    head = (f"{'scenario':<11} {'system':<15} {'wall s':>8} {'ratio':>7} "
            f"{'gap p50 ms':>11} {'gap p95 ms':>11}")
    print()
    print(head)
    print("-" * len(head))
    for scenario, s in results["scenarios"].items():
        for key in ("kflow", *(f"metaflow_{m}" for m in MODES)):
            if key not in s:
                continue
            gap = s[key]["step_gap_s"]
            rat = ("" if key == "kflow"
                   else f"{s[f'ratio_kflow_over_{key}']['wall']:.2f}x")
            print(f"{scenario:<11} {key:<15} {s[key]['wall_s']:>8.2f} {rat:>7} "
                  f"{gap.get('p50', 0) * 1000:>11.0f} {gap.get('p95', 0) * 1000:>11.0f}")
    print("ratio = kflow wall / Metaflow wall (> 1: kflow slower); gap = parent's user code "
          "end → child's user code start")
    many = results.get("concurrent_runs")
    if many:
        lt = many["transition_under_load_s"]
        print(f"\n{many['runs']} concurrent FlowRuns of linear3: {many['succeeded']} succeeded, "
              f"all done in {many['wall_all_s']:.1f}s; operator RSS idle "
              f"{many['operator_idle_rss_mb']:.0f} MiB, peak {many['operator_peak_rss_mb']:.0f}"
              f" MiB (VmHWM {many['operator_vmhwm_mb']:.0f} MiB); transitions under load "
              f"p50 {lt.get('p50', 0) * 1000:.0f} ms p95 {lt.get('p95', 0) * 1000:.0f} ms")


def leftovers(tmp: str) -> list[str]:
    """Processes whose command line mentions the bench's tmp dir (pgrep -af)."""
    done = subprocess.run(["pgrep", "-af", tmp], capture_output=True, text=True)
    return [line for line in done.stdout.splitlines() if "pgrep" not in line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each flow per system")
    parser.add_argument("--width", type=int, default=100, help="foreach width")
    parser.add_argument("--concurrent", type=int, default=100,
                        help="FlowRuns submitted at once for the operator's RSS (0: skip)")
    parser.add_argument("--s3-repeats", type=int, default=1,
                        help="runs of Metaflow's S3 datastore mode per flow (slow: ~2 s "
                             "per task here)")
    parser.add_argument("--quick", action="store_true",
                        help="1 repeat, width 20, 20 concurrent runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.width, args.concurrent = 1, 20, 20
    check_twins(f for f, _ in SCENARIOS.values())
    mf = metaflow_python()
    mf_args = metaflow_args(mf)
    machine = machine_facts(mf)
    began = time.monotonic()
    kflow_runs: list[KflowRun] = []
    mf_runs: list[MetaflowRun] = []
    many = None
    options = {"linear3": ([], {}),
               "foreach100": ([f"--width={args.width}"], {"width": str(args.width)})}
    with tempfile.TemporaryDirectory(prefix="kflow-bench-sched-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        with embedded_cluster(Path(tmp) / "cluster") as kube:
            prepare_namespace(kube)
            with running_operator(kube, work) as operator:
                flows: dict[str, dict[str, Any]] = {}
                for scenario, (flow_file, _) in SCENARIOS.items():
                    name = deploy(kube, flow_file)
                    flows[scenario] = cast(dict[str, Any], kube.custom.get_namespaced_custom_object(
                        api_types.GROUP, api_types.VERSION, NAMESPACE, api_types.FLOW_PLURAL,
                        name))
                for repeat in range(1, args.repeats + 1):
                    for scenario in SCENARIOS:
                        mf_opts, params = options[scenario]
                        run = run_kflow(kube, operator, flows, scenario,
                                        f"{scenario}-{repeat}", params)
                        kflow_runs.append(run)
                        t = summary(run.trans.to_create)
                        print(f"[{time.monotonic() - began:6.1f}s] {scenario:<10} kflow    "
                              f"#{repeat}: {run.phase} in {run.wall_s:.2f}s, {run.tasks} pods,"
                              f" transition p50 {t.get('p50', 0) * 1000:.0f} ms p95 "
                              f"{t.get('p95', 0) * 1000:.0f} ms", flush=True)
                        for mode in MODES:
                            if mode == "s3" and repeat > args.s3_repeats:
                                continue
                            mr = run_metaflow(mf, mf_args, kube, work, scenario, mode,
                                              f"{scenario}-mf-{mode}-{repeat}", mf_opts,
                                              parents_of(flows[scenario]))
                            mf_runs.append(mr)
                            print(f"[{time.monotonic() - began:6.1f}s] {scenario:<10} "
                                  f"Metaflow {mode:<5} #{repeat}: {mr.wall_s:.2f}s", flush=True)
                if args.concurrent:
                    delete_runs(kube)
                    print(f"[{time.monotonic() - began:6.1f}s] {args.concurrent} concurrent "
                          f"FlowRuns ...", flush=True)
                    many = concurrent_runs(kube, operator, flows, args.concurrent)
        time.sleep(1)
        left = leftovers(tmp)
    results = {"machine": machine,
               "config": {"repeats": args.repeats, "s3_repeats": args.s3_repeats,
                          "width": args.width,
                          "concurrent": args.concurrent, "quick": args.quick,
                          "metaflow_max_workers": 16, "kflow_max_parallelism": 16},
               **report(kflow_runs, mf_runs, many),
               "leftover_processes": left,
               "bench_seconds": time.monotonic() - began}
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    results["kflow_runs"] = [{"scenario": r.scenario, "name": r.name, "wall_s": r.wall_s,
                              "phase": r.phase, "tasks": r.tasks,
                              "first_create_s": r.first_create_s, "span_s": r.span_s,
                              "transitions_s": r.trans.to_create,
                              "ready_to_create_s": r.trans.ready_to_create,
                              "step_gaps_s": r.trans.step_gap,
                              "slot_waits": r.trans.slot_waits} for r in kflow_runs]
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_summary(results)
    if left:
        print(f"WARNING: processes left over: {left}")
    print(f"\n{results['bench_seconds']:.0f}s in all; written to {args.out}")


if __name__ == "__main__":
    main()
