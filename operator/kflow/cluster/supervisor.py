"""`kflow cluster up | down | status`: the embedded cluster's life cycle.

Owns: the cluster folder's `state.json` (ports, the process record of each
component, versions), the start order (etcd → apiserver → controller-manager,
scheduler and S3 → process node), waiting on each component's health check,
and stopping everything that was started, pods included, leaving no orphan.

`up` is idempotent: with every recorded process alive and healthy it only
reports the running cluster; with some dead it stops the rest and starts
the whole cluster again on the same folder (data kept). A component that
fails to start aborts `up`, stops what was started, and raises a
`ComponentError` naming the component, its log and the log's tail. One
`flock` on the folder serialises concurrent `up`/`down` calls.

`stop_component` / `start_component` take one component (the S3 server) down
and bring it back on the same ports and data while the rest runs: outages for
fault-injection tests. A cluster with a stopped component is unhealthy, so
`up` would restart all of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kflow.cluster import binaries, components, health, pki, processes, s3
from kflow.cluster.components import COMPONENTS, Layout

# Seconds each component gets to become healthy (2 cores, cold caches).
READY_TIMEOUT = {
    "etcd": 30.0,
    "kube-apiserver": 120.0,
    "kube-controller-manager": 60.0,
    "kube-scheduler": 60.0,
    "s3": 60.0,
    "node": 60.0,
}


class ClusterError(RuntimeError):
    """The cluster can't be started, stopped or read; the message says what to do."""


class ComponentError(ClusterError):
    """One component failed to start: its name, why, its log's path and tail."""

    def __init__(self, component: str, reason: str, log: Path) -> None:
        try:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            tail = "(the log is empty)"
        super().__init__(
            f"{component} failed to start: {reason}\n"
            f"--- last lines of {log} ---\n{tail}\n--- full log: {log}"
        )
        self.component = component
        self.log = log


def default_dir(name: str = "default") -> Path:
    """`KFLOW_CLUSTER_DIR`, else `~/.kflow/clusters/<name>`."""
    if env := os.environ.get("KFLOW_CLUSTER_DIR"):
        return Path(env).expanduser()
    return Path.home() / ".kflow" / "clusters" / name


@dataclass
class State:
    """What `up` recorded in state.json."""

    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, processes.ProcessRecord] = field(default_factory=dict)
    k8s_version: str = ""
    etcd_version: str = ""
    kubectl: str = "kubectl"
    started_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "ports": self.ports,
            "processes": {n: r.to_json() for n, r in self.processes.items()},
            "k8s_version": self.k8s_version,
            "etcd_version": self.etcd_version,
            "kubectl": self.kubectl,
            "started_at": self.started_at,
        }

    @classmethod
    def load(cls, layout: Layout) -> State | None:
        try:
            data = json.loads(layout.state.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise ClusterError(f"{layout.state} is not valid JSON ({exc}); stop any "
                               f"leftover processes by hand and delete the file") from exc
        return cls(
            ports={k: int(v) for k, v in data.get("ports", {}).items()},
            processes={n: processes.ProcessRecord.from_json(r)
                       for n, r in data.get("processes", {}).items()},
            k8s_version=data.get("k8s_version", ""),
            etcd_version=data.get("etcd_version", ""),
            kubectl=data.get("kubectl", "kubectl"),
            started_at=float(data.get("started_at", 0.0)),
        )

    def save(self, layout: Layout) -> None:
        tmp = layout.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(layout.state)


@dataclass(frozen=True)
class Report:
    """The outcome of `up`: where things are, and whether it was already running."""

    layout: Layout
    state: State
    already_running: bool
    seconds: float

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.state.ports['s3_s3']}"

    def describe(self) -> str:
        how = "already running" if self.already_running else f"up in {self.seconds:.1f}s"
        lay = self.layout
        return "\n".join([
            f"kflow cluster at {lay.dir} is {how}: Kubernetes {self.state.k8s_version}, "
            f"etcd {self.state.etcd_version}, node {components.NODE_NAME} Ready",
            "  use it with:",
            f"    export KUBECONFIG={lay.kubeconfig}",
            f"  API server:  {components.apiserver_url(self.state.ports)}",
            f"  S3 endpoint: {self.s3_endpoint}  (bucket and keys in {lay.s3_credentials})",
            f"  logs:        {lay.logs}/",
            f"  stop with:   kflow cluster down --dir {lay.dir}",
        ])


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    layout.dir.mkdir(parents=True, exist_ok=True)
    with layout.lock.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _unhealthy(layout: Layout, state: State) -> dict[str, str]:
    """Component → reason, for every recorded component that is not serving."""
    checks = health.probes(layout, state.ports)
    bad: dict[str, str] = {}
    for name in COMPONENTS:
        record = state.processes.get(name)
        if record is None or not processes.alive(record):
            bad[name] = "not running"
        elif reason := checks[name]():
            bad[name] = reason
    return bad


def _wait_ready(name: str, layout: Layout, state: State) -> None:
    check = health.probes(layout, state.ports)[name]
    record = state.processes[name]
    deadline = time.monotonic() + READY_TIMEOUT[name]
    reason: str | None = "not checked"
    while time.monotonic() < deadline:
        if not processes.alive(record):
            raise ComponentError(name, "the process exited", layout.log(name))
        reason = check()
        if reason is None:
            return
        time.sleep(0.2)
    raise ComponentError(
        name, f"not healthy after {READY_TIMEOUT[name]:.0f}s: {reason}", layout.log(name)
    )


# Stopped group by group, each group at once: the node first (it stops its pods, which
# takes up to their grace period), etcd last (the apiserver can't shut down without it).
STOP_ORDER = (("node",), ("kube-controller-manager", "kube-scheduler", "s3"),
              ("kube-apiserver",), ("etcd",))


# What the argv of each component's process starts with (binary names, the node's module).
COMPONENT_MARKERS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                     "weed", "kflow.cluster.node")


def _stop_all(layout: Layout, state: State | None) -> list[str]:
    """Stop every recorded process and any pod process left; what survived (nothing)."""
    survivors: list[str] = []
    if state is not None:
        for group in STOP_ORDER:
            records = {state.processes[n].pid: n for n in group if n in state.processes}
            left = processes.stop_all(
                [state.processes[n] for n in records.values()],
                grace=30.0 if group == ("node",) else 10.0,
            )
            survivors += [f"{records[r.pid]} (pid {r.pid})" for r in left]
            if "s3" in records.values() and not left:
                s3.remove_sockets(components.s3_ports(state.ports))
    if layout.node_pgids.is_dir():
        pgids = [int(e.name) for e in layout.node_pgids.iterdir() if e.name.isdigit()]
        survivors += [f"pod process group {g}" for g in processes.kill_groups(pgids, 2.0)]
        for entry in layout.node_pgids.iterdir():
            entry.unlink(missing_ok=True)
    # Processes of this folder whose records were lost (a crashed `up`, a deleted state).
    strays = processes.groups_of(processes.find_components(layout.dir, COMPONENT_MARKERS))
    survivors += [f"stray process group {g}" for g in processes.kill_groups(strays, 5.0)]
    return survivors


def _start(name: str, argv: list[str], layout: Layout, state: State) -> None:
    env, cwd = None, layout.dir
    if name == "s3":
        # weed acts on AWS_*/S3_* variables and on *.toml files in $HOME and its cwd.
        s3.prepare_data_dir(layout.s3_data)
        env, cwd = s3.server_env(os.environ, layout.s3_data), layout.s3_data
    state.processes[name] = processes.start(argv, layout.log(name), env=env, cwd=cwd)
    state.save(layout)


def _start_all(layout: Layout, state: State, image_map: str | None, progress: TextIO) -> None:
    bins = binaries.resolve(progress)
    state.k8s_version, state.etcd_version = bins.k8s_version, bins.etcd_version
    state.kubectl = bins.kubectl
    pki.ensure(layout.pki.dir)
    state.ports = processes.free_ports(components.PORT_NAMES, prefer=state.ports)
    layout.kubeconfig.write_text(
        components.kubeconfig_text(layout.pki, components.apiserver_url(state.ports))
    )
    layout.kubeconfig.chmod(0o600)
    endpoint = f"http://127.0.0.1:{state.ports['s3_s3']}"
    try:  # keep the keys of an earlier start, so clients' copies stay valid
        old = s3.read_credentials_file(layout.s3_credentials)
        creds = s3.S3Credentials(endpoint, old.access_key, old.secret_key, old.bucket, old.region)
    except (OSError, ValueError, KeyError):
        creds = s3.new_credentials(endpoint)
    s3.write_credentials_file(layout.s3_credentials, creds)
    s3_config = s3.write_config(_s3_config_dir(layout), creds)
    layout.node_pgids.mkdir(parents=True, exist_ok=True)

    def step(names: tuple[str, ...], argvs: Mapping[str, list[str]]) -> None:
        for name in names:
            print(f"  starting {name}", file=progress, flush=True)
            _start(name, argvs[name], layout, state)
        for name in names:
            _wait_ready(name, layout, state)

    p = state.ports
    step(("etcd",), {"etcd": components.etcd_argv(bins, layout, p)})
    step(("kube-apiserver",), {"kube-apiserver": components.apiserver_argv(bins, layout, p)})
    step(("kube-controller-manager", "kube-scheduler", "s3"), {
        "kube-controller-manager": components.controller_manager_argv(bins, layout, p),
        "kube-scheduler": components.scheduler_argv(bins, layout, p),
        "s3": components.s3_argv(layout, p, s3_config),
    })
    s3.ensure_bucket(creds)
    step(("node",), {"node": components.node_argv(layout, p, image_map)})


def up(directory: Path, *, image_map: str | None = None,
       progress: TextIO = sys.stderr) -> Report:
    """Start the cluster in `directory`, or report it when it already runs."""
    layout = Layout(directory.resolve())
    started = time.monotonic()
    with _locked(layout):
        state = State.load(layout)
        if state is not None and state.processes:
            bad = _unhealthy(layout, state)
            if not bad:
                return Report(layout, state, already_running=True, seconds=0.0)
            print("restarting the cluster: " + "; ".join(f"{n}: {r}" for n, r in bad.items()),
                  file=progress, flush=True)
        # Also clears what a crashed `up` may have left without records.
        if survivors := _stop_all(layout, state):
            raise ClusterError(f"could not stop {', '.join(survivors)} of {layout.dir}; "
                               f"stop them by hand, then run `kflow cluster up` again")
        state = State(ports=state.ports if state else {})
        state.started_at = time.time()
        try:
            _start_all(layout, state, image_map, progress)
        except BaseException:
            _stop_all(layout, state)
            layout.state.unlink(missing_ok=True)
            raise
        return Report(layout, state, already_running=False, seconds=time.monotonic() - started)


def _s3_config_dir(layout: Layout) -> Path:
    return layout.s3_data.with_name("s3-config")


# Components that can be stopped and started while the rest of the cluster runs: the
# others are started by `up` in dependency order, with certificates and flags of that start.
RESTARTABLE = ("s3",)


def _running_state(layout: Layout, name: str) -> State:
    """The state of the cluster in `layout`, if `name` can be restarted in it."""
    if name not in RESTARTABLE:
        raise ClusterError(f"{name} cannot be stopped or started on its own (only "
                           f"{', '.join(RESTARTABLE)}); use `kflow cluster down` and `up`")
    state = State.load(layout)
    if state is None or name not in state.processes:
        raise ClusterError(f"no cluster runs in {layout.dir}: start one with "
                           f"`kflow cluster up --dir {layout.dir}`")
    return state


def stop_component(directory: Path, name: str, *, grace: float = 10.0) -> None:
    """Stop one component of the running cluster in `directory` (SIGTERM, SIGKILL after
    `grace` seconds; 0 for a crash); the rest keeps running. See `start_component`."""
    layout = Layout(directory.resolve())
    with _locked(layout):
        state = _running_state(layout, name)
        record = state.processes[name]
        if processes.stop_all([record], grace=grace):
            raise ClusterError(f"could not stop {name} (pid {record.pid}) of {layout.dir}")
        if name == "s3":
            s3.remove_sockets(components.s3_ports(state.ports))


def start_component(directory: Path, name: str) -> None:
    """Start a stopped component again, on the ports and with the data it had, and wait
    until it is healthy (a `ComponentError` if not); nothing if it runs."""
    layout = Layout(directory.resolve())
    with _locked(layout):
        state = _running_state(layout, name)
        if processes.alive(state.processes[name]):
            return
        config = _s3_config_dir(layout) / s3.CONFIG_FILENAME
        _start(name, components.s3_argv(layout, state.ports, config), layout, state)
        _wait_ready(name, layout, state)


def restart_component(directory: Path, name: str, *, grace: float = 10.0) -> None:
    """`stop_component`, then `start_component`."""
    stop_component(directory, name, grace=grace)
    start_component(directory, name)


def down(directory: Path, *, purge: bool = False) -> list[str]:
    """Stop everything `up` started in `directory`; the processes that survived (none)."""
    layout = Layout(directory.resolve())
    if not layout.dir.exists():
        return []
    with _locked(layout):
        survivors = _stop_all(layout, State.load(layout))
        if not survivors:
            layout.state.unlink(missing_ok=True)
    if purge and not survivors:
        shutil.rmtree(layout.dir)
    return survivors


def status(directory: Path) -> tuple[bool, list[tuple[str, str, str]]]:
    """(all healthy, rows of component / pid / health) of the cluster in `directory`."""
    layout = Layout(directory.resolve())
    state = State.load(layout)
    if state is None:
        return False, [(name, "-", "not started") for name in COMPONENTS]
    bad = _unhealthy(layout, state)
    rows = []
    for name in COMPONENTS:
        record = state.processes.get(name)
        rows.append((name, str(record.pid) if record else "-", bad.get(name, "healthy")))
    return not bad, rows


def load_report(directory: Path) -> Report:
    """The Report of a running cluster (for `kflow cluster env` and the tests)."""
    layout = Layout(directory.resolve())
    state = State.load(layout)
    if state is None:
        raise ClusterError(f"no cluster runs in {layout.dir}: start one with "
                           f"`kflow cluster up --dir {layout.dir}`")
    return Report(layout, state, already_running=True, seconds=0.0)
