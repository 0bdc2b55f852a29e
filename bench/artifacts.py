"""Artifact handoff between two steps: kflow against Metaflow, measured in the same run.

    .venv/bin/python bench/artifacts.py [--repeats 3] [--array-mb 256] [--artifacts 10000]

Scenarios (flows in bench/flows/metaflow/ and their kflow twins in
bench/flows/kflow/, identical but for the import line):

- large:  a BENCH_ARRAY_MB MiB random float64 numpy array set in `start`,
          read in `end` (large_artifact.py);
- tiny:   the same flow with an 8-byte array: the fixed cost of a handoff
          (process starts, imports, scheduling), to tell it from the
          size-dependent part;
- many:   10,000 artifacts (attributes a00000..a09999, small ints) set in
          `start`, read back one by one in `end` (many_artifacts.py).

Systems and modes, each against the same storage as its twin:

- Metaflow (PyPI, in its own venv bench/.venv-metaflow, made on first run):
  `python flow.py run`, local datastore (METAFLOW_DATASTORE_SYSROOT_LOCAL in a
  tmp dir) and S3 datastore (METAFLOW_S3_ENDPOINT_URL = the bench's SeaweedFS);
- kflow: the in-pod runner `python -m kflow.runner` started as a subprocess
  for `start`, then as soon as it exits for `end` (the harness stands in for
  the operator: no Kubernetes pod start is included), store in a tmp dir
  (KFLOW_STORE_DIR) or on the same SeaweedFS (KFLOW_S3_*).

Handoff (the headline): from the moment `start`'s user code has assigned the
artifact(s) to the moment `end`'s user code holds them all, both stamped by the
flow itself with time.monotonic() (system-wide CLOCK_MONOTONIC, so comparable
across processes) into the file named by BENCH_MARKS. It covers, for both
systems alike: serialising and storing, the end of the first task process,
starting the second one (Python start-up, imports, loading the flow), and
fetching and deserialising. Metaflow loads artifacts lazily on attribute
access, so `end` touches them before stamping `loaded`. Also reported: the
split at `end`'s first line (`launch` = saved -> user_start, `load` =
user_start -> loaded; where a system loads eagerly, its load falls in
`launch`), and the whole run's wall time (not comparable: Metaflow's includes
its run bootstrap, kflow's only the two runner processes).

Peak RSS: the kernel's high-water mark (VmHWM in /proc/<pid>/status) of every
task process, polled every 50 ms while it runs (the mark only grows, so a
poll misses at most a rise in a process' last 50 ms); "task processes" are
the `step` subprocesses of `flow.py run` for Metaflow and the runner
processes for kflow. `peak_rss_mb` is the largest mark of one process in
either task's tree (the task process itself, in every run so far);
`peak_rss_tree_mb` sums the marks of a task and its descendants (Metaflow's
s3op workers, say): an upper bound of what the task held at once. For kflow the
runner processes are our children, so os.wait4's exact ru_maxrss is recorded
too (`peak_rss_wait4_mb`), a check on the polling.

Each (scenario, system, mode) runs --repeats times, interleaved, and the
median is reported. Every run draws new random data, so no store can reuse a
previous run's objects. Ratios are Metaflow time / kflow time (> 1: kflow is
faster), mode for mode and against the faster Metaflow mode. The issue's
targets (large handoff >= 4x faster than the faster Metaflow mode; peak RSS
<= 2x the artifact size) are reported, never asserted.

Checked on every run: the S3 runs really wrote to the bucket (objects and
bytes under their prefix are recorded), and no process of the tree had a
TCP/UDP peer outside 127.0.0.0/8 or ::1 (sampled every second).

Results go to bench/results/artifacts.json.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import psutil

from kflow.cluster import processes, s3
from kflow.packaging import build_package

BENCH = Path(__file__).resolve().parent
FLOWS = BENCH / "flows"
MF_VENV = BENCH / ".venv-metaflow"
MF_REQUIREMENTS = ["metaflow~=2.19.0", "boto3", "numpy", "psutil"]
RESULTS = BENCH / "results" / "artifacts.json"

SCENARIOS = {  # name -> (flow file, flow class, extra env)
    "large": ("large_artifact.py", "LargeArtifactFlow", {}),
    "tiny": ("large_artifact.py", "LargeArtifactFlow", {"BENCH_ARRAY_MB": "0"}),
    "many": ("many_artifacts.py", "ManyArtifactsFlow", {}),
}
SYSTEMS = ("metaflow", "kflow")
MODES = ("local", "s3")
BUCKET = "bench"
NAMESPACE = "bench"
HWM_POLL_S = 0.05
TREE_POLL_S = 0.25
NET_POLL_S = 1.0
RUN_TIMEOUT_S = 300.0
# Runs repeated only --slow-repeats times: Metaflow's S3 datastore takes ~2 min
# for 10,000 artifacts here (one GET per artifact on read), so 3 of them would
# take most of the ~10 minutes the whole bench is allowed.
SLOW = {("many", "metaflow", "s3")}
MB = 1024 * 1024


# ------------------------------------------------------------------ the peer


def metaflow_python() -> Path:
    """bench/.venv-metaflow/bin/python, making the venv first if it is missing
    or incomplete (Metaflow's boto3 pins python-dateutil<3, kflow's kubernetes
    client needs >=3, so they cannot share kflow's venv)."""
    python = MF_VENV / "bin" / "python"
    probe = [str(python), "-c", "import metaflow, boto3, numpy, psutil"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"setting up the Metaflow peer in {MF_VENV} ...", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MF_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *MF_REQUIREMENTS], check=True)
    subprocess.run(probe, check=True)
    return python


def package_version(python: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "absent"


def check_twins(files: Iterable[str]) -> None:
    """Each kflow flow in `files` (bench/flows/kflow/) is its Metaflow twin with
    `from kflow import` for `from metaflow import`."""
    for name in files:
        mf = (FLOWS / "metaflow" / name).read_text()
        kf = (FLOWS / "kflow" / name).read_text()
        if mf.replace("from metaflow import", "from kflow import") != kf:
            raise SystemExit(f"bench/flows/kflow/{name} is not the twin of "
                             f"bench/flows/metaflow/{name} (only the import may differ)")


def step_gaps(marks: Path, parents: dict[str, list[str]]) -> list[float]:
    """User code end of the parents → user code start of each task, from the marks the
    bench flows write (``step start|end time pid`` lines)."""
    starts: dict[str, list[float]] = {}
    ends: dict[str, list[float]] = {}
    for line in marks.read_text().splitlines():
        step, event, t, _ = line.split()
        (starts if event == "start" else ends).setdefault(step, []).append(float(t))
    gaps = []
    for step, times in starts.items():
        if step not in parents:
            continue
        parent_end = max(e for p in parents[step] for e in ends.get(p, []))
        gaps += [t - parent_end for t in times]
    return gaps


# --------------------------------------------------------------- the S3 server


@dataclass
class S3Server:
    """A SeaweedFS `weed mini` on free loopback ports, in a tmp dir."""

    creds: s3.S3Credentials
    ports: dict[str, int]
    record: processes.ProcessRecord
    log: Path
    data_dir: Path

    @classmethod
    @contextlib.contextmanager
    def running(cls, state_dir: Path) -> Iterator[S3Server]:
        ports = processes.free_ports(s3.PORT_NAMES)
        creds = s3.new_credentials(s3.endpoint_for(ports["s3"]), bucket=BUCKET)
        data_dir = state_dir / "data"
        s3.prepare_data_dir(data_dir)
        config = s3.write_config(state_dir, creds)
        log = state_dir / "weed.log"
        record = processes.start(s3.server_argv(s3.find_weed(), data_dir, config, ports), log,
                                 env=s3.server_env(os.environ, state_dir), cwd=data_dir)
        server = cls(creds, ports, record, log, data_dir)
        try:
            deadline = time.monotonic() + 30
            reason = s3.probe(creds)
            while reason is not None:
                if time.monotonic() > deadline or not processes.alive(record):
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                    raise SystemExit(f"S3 server not ready: {reason}\n{tail}")
                time.sleep(0.05)
                reason = s3.probe(creds)
            s3.ensure_bucket(creds)
            yield server
        finally:
            processes.stop(record, grace=15)
            s3.remove_sockets(ports)

    def usage(self, prefix: str) -> dict[str, int]:
        """Objects and bytes under `prefix` in the bucket."""
        count = size = 0
        for obj in s3.client(self.creds).list_objects(BUCKET, prefix=prefix, recursive=True):
            count += 1
            size += obj.size or 0
        return {"objects": count, "bytes": size}


# ---------------------------------------------------------- process sampling


class BackgroundLoop:
    """`with` runs `self._loop()` on a daemon thread; leaving sets `self._stop` (which
    `_loop` polls) and joins it. Subclasses are dataclasses with the two fields below."""

    _stop: threading.Event
    _thread: threading.Thread | None

    def _loop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()


@dataclass
class Seen:
    ppid: int
    cmdline: list[str]
    hwm_kb: int = 0


@dataclass
class Sampler(BackgroundLoop):
    """Polls the process trees under `roots`: VmHWM of each process, and the
    remote addresses of their sockets that are not loopback."""

    roots: set[int] = field(default_factory=set)
    seen: dict[int, Seen] = field(default_factory=dict)
    remote: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def add_root(self, pid: int) -> None:
        with self._lock:
            self.roots.add(pid)
            self._discover()

    def _discover(self) -> None:  # with self._lock held
        for root in list(self.roots):
            try:
                procs = [psutil.Process(root)]
                procs += procs[0].children(recursive=True)
            except psutil.Error:
                continue
            for proc in procs:
                if proc.pid not in self.seen:
                    with contextlib.suppress(psutil.Error):
                        self.seen[proc.pid] = Seen(proc.ppid(), proc.cmdline())

    def _hwm(self) -> None:
        for pid, seen in self.seen.items():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    seen.hwm_kb = max(seen.hwm_kb, int(line.split()[1]))
                    break

    def _net(self) -> None:
        for pid in list(self.seen):
            try:
                conns = psutil.Process(pid).net_connections(kind="inet")
            except psutil.Error:
                continue
            for conn in conns:
                if conn.raddr and not ipaddress.ip_address(conn.raddr.ip).is_loopback:
                    self.remote.add(f"{conn.raddr.ip}:{conn.raddr.port}")

    def _loop(self) -> None:
        last_tree = last_net = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                if now - last_tree >= TREE_POLL_S:
                    self._discover()
                    last_tree = now
                self._hwm()
                if now - last_net >= NET_POLL_S:
                    self._net()
                    last_net = now
            self._stop.wait(HWM_POLL_S)
        with self._lock:
            self._hwm()

    def descendants(self, pid: int) -> list[int]:
        out = []
        stack = [pid]
        while stack:
            parent = stack.pop()
            kids = [p for p, s in self.seen.items() if s.ppid == parent]
            out += kids
            stack += kids
        return out

    def task_rss(self, pid: int) -> tuple[float, float]:
        """(largest VmHWM of one process, sum of VmHWM) over the process tree of
        task process `pid`, in MiB."""
        marks = [self.seen[p].hwm_kb for p in [pid, *self.descendants(pid)] if p in self.seen]
        return max(marks, default=0) / 1024, sum(marks) / 1024


# ------------------------------------------------------------------- the runs


@dataclass
class Run:
    scenario: str
    system: str
    mode: str
    repeat: int
    handoff_s: float = 0.0
    launch_s: float = 0.0
    load_s: float = 0.0
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_rss_tree_mb: float = 0.0
    peak_rss_by_step_mb: dict[str, float] = field(default_factory=dict)
    peak_rss_wait4_mb: float | None = None
    stored_s3: dict[str, int] = field(default_factory=dict)
    stored_local: dict[str, int] = field(default_factory=dict)
    remote_peers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    work: Path
    server: S3Server
    mf_python: Path
    mf_args: tuple[str, ...]
    array_mb: int
    artifacts: int


def scenario_env(ctx: Context, scenario: str, marks: Path) -> dict[str, str]:
    env = {"BENCH_ARRAY_MB": str(ctx.array_mb), "BENCH_ARTIFACTS": str(ctx.artifacts),
           "BENCH_MARKS": str(marks)}
    return env | SCENARIOS[scenario][2]


def clean_env(extra: dict[str, str], home: Path) -> dict[str, str]:
    """os.environ minus anything that would configure either system or AWS, with
    HOME in the run's folder (so no ~/.metaflowconfig, ~/.aws or ~/.kflow applies)."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("METAFLOW_", "AWS_", "KFLOW_", "BENCH_", "S3_"))}
    env.update(HOME=str(home), USER="bench", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def read_marks(path: Path) -> dict[str, tuple[float, int]]:
    """event -> (time.monotonic(), pid) from the flow's BENCH_MARKS file."""
    marks = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        event, t, pid, _ = line.split()
        marks[event] = (float(t), int(pid))
    missing = {"saved", "user_start", "loaded"} - marks.keys()
    if missing:
        raise SystemExit(f"{path}: no {', '.join(sorted(missing))} mark")
    return marks


def log_tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


def dir_usage(path: Path) -> dict[str, int]:
    count = size = 0
    for root, _, files in os.walk(path):
        for name in files:
            count += 1
            size += (Path(root) / name).stat().st_size
    return {"objects": count, "bytes": size}


def finish(run: Run, ctx: Context, sampler: Sampler, marks: Path,
           tasks: dict[str, int], local_store: Path, s3_prefix: str) -> Run:
    """Timings from the marks, RSS of the task processes, where the data went."""
    m = read_marks(marks)
    run.handoff_s = m["loaded"][0] - m["saved"][0]
    run.launch_s = m["user_start"][0] - m["saved"][0]
    run.load_s = m["loaded"][0] - m["user_start"][0]
    for step, pid in tasks.items():
        largest, tree = sampler.task_rss(pid)
        run.peak_rss_by_step_mb[step] = largest
        run.peak_rss_mb = max(run.peak_rss_mb, largest)
        run.peak_rss_tree_mb = max(run.peak_rss_tree_mb, tree)
    run.remote_peers = sorted(sampler.remote)
    run.stored_local = dir_usage(local_store)
    run.stored_s3 = ctx.server.usage(s3_prefix)
    stored = run.stored_s3 if run.mode == "s3" else run.stored_local
    other = run.stored_local if run.mode == "s3" else run.stored_s3
    if run.scenario == "large":  # the array really went to the store of this mode
        expected = ctx.array_mb * MB
        if not stored["bytes"] >= 0.9 * expected > other["bytes"]:
            raise SystemExit(f"{run.system} {run.mode}: expected ~{expected} bytes in the "
                             f"{run.mode} store, found {stored} (and {other} in the other)")
    shutil.rmtree(local_store, ignore_errors=True)
    return run


def run_metaflow(ctx: Context, scenario: str, mode: str, repeat: int) -> Run:
    """`python flow.py run` in the Metaflow venv; its tasks are its `step` children."""
    flow_file = SCENARIOS[scenario][0]
    label = f"{scenario}-metaflow-{mode}-{repeat}"
    rundir = ctx.work / label
    rundir.mkdir()
    marks = rundir / "marks"
    sysroot = rundir / "sysroot"
    env = clean_env(scenario_env(ctx, scenario, marks) | {
        "METAFLOW_DEFAULT_METADATA": "local",
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(sysroot)}, rundir)
    creds = ctx.server.creds
    if mode == "local":
        env["METAFLOW_DEFAULT_DATASTORE"] = "local"
    else:
        env.update(METAFLOW_DEFAULT_DATASTORE="s3",
                   METAFLOW_DATASTORE_SYSROOT_S3=f"s3://{BUCKET}/metaflow/{label}",
                   METAFLOW_S3_ENDPOINT_URL=creds.endpoint,
                   AWS_ACCESS_KEY_ID=creds.access_key,
                   AWS_SECRET_ACCESS_KEY=creds.secret_key,
                   AWS_DEFAULT_REGION=creds.region,
                   AWS_EC2_METADATA_DISABLED="true")
    run = Run(scenario, "metaflow", mode, repeat)
    log = rundir / "run.log"
    argv = [str(ctx.mf_python), str(FLOWS / "metaflow" / flow_file), *ctx.mf_args, "run"]
    with Sampler() as sampler, log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=rundir, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
        sampler.add_root(proc.pid)
        try:
            code = proc.wait(RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        run.wall_s = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"Metaflow {label} failed (exit {code}); {log}:\n{log_tail(log)}")
    # A step's task process: the child of `flow.py run` whose tree stamped its marks.
    tasks = {}
    for step, event in (("start", "saved"), ("end", "user_start")):
        pid = read_marks(marks)[event][1]
        while pid in sampler.seen and sampler.seen[pid].ppid != proc.pid:
            pid = sampler.seen[pid].ppid
        tasks[step] = pid
    return finish(run, ctx, sampler, marks, tasks, sysroot, f"metaflow/{label}/")


def run_kflow(ctx: Context, scenario: str, mode: str, repeat: int) -> Run:
    """The runner for `start`, then as soon as it has exited for `end`."""
    flow_file, flow_class, _ = SCENARIOS[scenario]
    label = f"{scenario}-kflow-{mode}-{repeat}"
    rundir = ctx.work / label
    rundir.mkdir()
    marks = rundir / "marks"
    store = rundir / "store"
    env = clean_env(scenario_env(ctx, scenario, marks), rundir)
    creds = ctx.server.creds
    if mode == "local":
        env["KFLOW_STORE_DIR"] = str(store)
    else:
        env.update(KFLOW_S3_ENDPOINT=creds.endpoint, KFLOW_S3_ACCESS_KEY=creds.access_key,
                   KFLOW_S3_SECRET_KEY=creds.secret_key, KFLOW_S3_BUCKET=BUCKET,
                   KFLOW_S3_PREFIX=f"kflow/{label}/")
    flow_dir = FLOWS / "kflow"
    sha = build_package(flow_dir / flow_file).sha256
    run = Run(scenario, "kflow", mode, repeat, peak_rss_wait4_mb=0.0)
    log = rundir / "run.log"
    tasks = {}
    with Sampler() as sampler, log.open("wb") as out:
        started = time.monotonic()
        for step in ("start", "end"):
            argv = [sys.executable, "-m", "kflow.runner", "--flow-file", flow_file,
                    "--code-sha256", sha, "--code-dir", str(flow_dir),
                    "--namespace", NAMESPACE, "--flow", flow_class, "--run-id", label,
                    "--step", step, "--task", "0", "--attempt", "0"]
            proc = subprocess.Popen(argv, cwd=rundir, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
            sampler.add_root(proc.pid)
            tasks[step] = proc.pid
            # wait4 (not proc.wait) for the exact ru_maxrss of this runner process.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            if code != 0:
                raise SystemExit(f"kflow {label} step {step} failed (exit {code}); "
                                 f"{log}:\n{log_tail(log)}")
            run.peak_rss_wait4_mb = max(run.peak_rss_wait4_mb or 0.0, usage.ru_maxrss / 1024)
        run.wall_s = time.monotonic() - started
    return finish(run, ctx, sampler, marks, tasks, store, f"kflow/{label}/")


RUNNERS = {"metaflow": run_metaflow, "kflow": run_kflow}


# ------------------------------------------------------------------ reporting


def median(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def summarise(runs: list[Run], scenario: str, system: str, mode: str) -> dict[str, Any] | None:
    mine = [r for r in runs if (r.scenario, r.system, r.mode) == (scenario, system, mode)]
    if not mine:
        return None
    out: dict[str, Any] = {"n": len(mine)}
    for attr in ("handoff_s", "launch_s", "load_s", "wall_s", "peak_rss_mb", "peak_rss_tree_mb"):
        out[attr] = median(mine, attr)
    out["handoff_s_all"] = [r.handoff_s for r in mine]
    if system == "kflow":
        out["peak_rss_wait4_mb"] = statistics.median(r.peak_rss_wait4_mb or 0.0 for r in mine)
    return out


def speedups(summary: dict[str, dict[str, Any]], attr: str) -> dict[str, Any]:
    """Metaflow / kflow for `attr`: mode for mode, and against the faster Metaflow mode."""
    mf = {m: summary.get(f"metaflow-{m}") for m in MODES}
    out: dict[str, Any] = {}
    present = {m: s[attr] for m, s in mf.items() if s}
    faster = min(present.values()) if present else None
    for mode in MODES:
        kf = summary.get(f"kflow-{mode}")
        if not kf or kf[attr] <= 0:
            continue
        out[f"kflow_{mode}"] = {
            f"vs_metaflow_{m}": present[m] / kf[attr] for m in present
        } | ({"vs_faster_metaflow": faster / kf[attr]} if faster else {})
    return out


def report(runs: list[Run], args: argparse.Namespace, machine: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine,
        "config": {"repeats": args.repeats, "slow_repeats": args.slow_repeats,
                   "slow": sorted("-".join(k) for k in SLOW), "array_mb": args.array_mb,
                   "artifacts": args.artifacts, "systems": args.systems},
        "definitions": {
            "handoff_s": "end of start's user code (artifacts assigned) -> end's user code "
                         "holds them all; time.monotonic() stamped in the flow",
            "launch_s": "saved -> first line of end's user code",
            "load_s": "first line of end's user code -> artifacts held",
            "peak_rss_mb": "largest VmHWM (polled every 50 ms) of one process in the "
                           "process tree of either task",
            "peak_rss_tree_mb": "largest sum of VmHWM over one task's process tree",
            "speedup": "Metaflow median / kflow median (> 1: kflow faster)",
        },
        "summary": {}, "speedup_handoff": {}, "speedup_net_of_tiny": {}, "targets": {},
        "runs": [r.__dict__ for r in runs],
    }
    for scenario in SCENARIOS:
        summ = {}
        for system in SYSTEMS:
            for mode in MODES:
                s = summarise(runs, scenario, system, mode)
                if s:
                    summ[f"{system}-{mode}"] = s
        if summ:
            results["summary"][scenario] = summ
            results["speedup_handoff"][scenario] = speedups(summ, "handoff_s")
    large, tiny = results["summary"].get("large", {}), results["summary"].get("tiny", {})
    net = {k: {"handoff_s": large[k]["handoff_s"] - tiny[k]["handoff_s"]}
           for k in large if k in tiny}
    results["speedup_net_of_tiny"] = {"large_minus_tiny_s": net,
                                      "speedup": speedups(net, "handoff_s")}
    artifact_mb = float(args.array_mb)
    for mode in MODES:
        key = f"kflow-{mode}"
        if key not in large:
            continue
        speed = results["speedup_handoff"]["large"].get(f"kflow_{mode}", {})
        vs = speed.get("vs_faster_metaflow")
        results["targets"][key] = {
            "handoff_speedup_vs_faster_metaflow": vs,
            "handoff_target_4x_met": vs is not None and vs >= 4.0,
            "peak_rss_over_artifact": large[key]["peak_rss_mb"] / artifact_mb,
            "peak_rss_target_2x_met": large[key]["peak_rss_mb"] <= 2 * artifact_mb,
        }
    return results


def print_table(results: dict[str, Any]) -> None:
    print()
    head = (f"{'scenario':<8} {'system-mode':<15} {'handoff s':>10} {'launch s':>9} "
            f"{'load s':>8} {'wall s':>8} {'peak RSS MiB':>13} {'tree MiB':>9}")
    print(head)
    print("-" * len(head))
    for scenario, summ in results["summary"].items():
        for key, s in summ.items():
            print(f"{scenario:<8} {key:<15} {s['handoff_s']:>10.3f} {s['launch_s']:>9.3f} "
                  f"{s['load_s']:>8.3f} {s['wall_s']:>8.2f} {s['peak_rss_mb']:>13.0f} "
                  f"{s['peak_rss_tree_mb']:>9.0f}")
    print()
    print("handoff speedup, Metaflow / kflow (> 1: kflow faster):")
    for scenario, sp in results["speedup_handoff"].items():
        for kf, vs in sp.items():
            if vs:
                    print(f"  {scenario:<10} {kf:<12} "
                      + "  ".join(f"{k} {v:.2f}x" for k, v in vs.items()))
    for kf, vs in results["speedup_net_of_tiny"]["speedup"].items():
        if vs:
                print(f"  large-tiny {kf:<12} " + "  ".join(f"{k} {v:.2f}x" for k, v in vs.items()))
    for key, t in results["targets"].items():
        vs = t["handoff_speedup_vs_faster_metaflow"]
        speed = "n/a" if vs is None else f"{vs:.2f}x"
        print(f"targets {key}: handoff vs faster Metaflow {speed} (target >= 4x: "
              f"{'met' if t['handoff_target_4x_met'] else 'NOT met'}); peak RSS "
              f"{t['peak_rss_over_artifact']:.2f}x the artifact (target <= 2x: "
              f"{'met' if t['peak_rss_target_2x_met'] else 'NOT met'})")


def metaflow_args(mf_python: Path) -> tuple[str, ...]:
    """The options every Metaflow run of the benches takes: ``--no-pylint`` when
    Metaflow's venv has no pylint (its lint step would fail, not measure)."""
    has_pylint = subprocess.run([str(mf_python), "-c", "import pylint"],
                                capture_output=True).returncode == 0
    return () if has_pylint else ("--no-pylint",)


def machine_facts(mf_python: Path) -> dict[str, Any]:
    mem = psutil.virtual_memory().total
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": next((line.split(":", 1)[1].strip()
                           for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name")), platform.processor()),
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "metaflow": package_version(mf_python, "metaflow"),
        "boto3_metaflow_venv": package_version(mf_python, "boto3"),
        "numpy_metaflow_venv": package_version(mf_python, "numpy"),
        "numpy_kflow_venv": package_version(Path(sys.executable), "numpy"),
        "seaweedfs": subprocess.run([s3.find_weed(), "version"], capture_output=True,
                                    text=True).stdout.strip().splitlines()[0:1],
        "load_avg_at_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--array-mb", type=int, default=256)
    parser.add_argument("--artifacts", type=int, default=10000)
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS),
                        default=list(SCENARIOS))
    parser.add_argument("--slow-repeats", type=int, default=1,
                        help="runs of Metaflow's S3 mode on `many` (about 2 minutes each)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    check_twins(name for name, _, _ in SCENARIOS.values())
    mf_python = metaflow_python()
    mf_args = metaflow_args(mf_python)
    machine = machine_facts(mf_python)
    runs: list[Run] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kflow-bench-artifacts-") as tmp, \
            S3Server.running(Path(tmp) / "s3") as server:
        work = Path(tmp) / "runs"
        work.mkdir()
        ctx = Context(work, server, mf_python, mf_args,
                      args.array_mb, args.artifacts)
        for repeat in range(1, args.repeats + 1):
            for scenario in args.scenarios:
                for mode in MODES:
                    for system in args.systems:
                        if (scenario, system, mode) in SLOW and repeat > args.slow_repeats:
                            continue
                        run = RUNNERS[system](ctx, scenario, mode, repeat)
                        runs.append(run)
                        print(f"[{time.monotonic() - began:6.1f}s] {scenario:<5} "
                              f"{system:<8} {mode:<5} #{repeat}: handoff {run.handoff_s:7.3f}s "
                              f"(launch {run.launch_s:.3f}, load {run.load_s:.3f}), "
                              f"peak RSS {run.peak_rss_mb:.0f} MiB, "
                              f"stored {run.stored_s3 if mode == 's3' else run.stored_local}",
                              flush=True)
                        if run.remote_peers:
                            raise SystemExit(f"non-loopback peers: {run.remote_peers}")
    results = report(runs, args, machine)
    results["bench_seconds"] = time.monotonic() - began
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\n{len(runs)} runs in {results['bench_seconds']:.0f}s; written to {args.out}")


if __name__ == "__main__":
    main()
