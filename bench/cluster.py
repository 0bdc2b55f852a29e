"""Measure the embedded cluster: `cluster up` time and pod latency.

    .venv/bin/python bench/cluster.py [--pods 50]

- cold `up`: a new cluster folder (PKI, etcd bootstrap, RBAC bootstrap), binaries cached;
- warm `up`: `down` then `up` again on the same folder (data kept);
- pod latency over N pods created one after another: create → Running and
  create → Succeeded, p50 and p95, as seen by a watch from this process;
- the peer, measured in the same run: the same container command started
  directly with `subprocess` (what the process node cannot beat), so the
  ratio is the node's and the control plane's overhead. (Metaflow is the
  peer of the flow benchmarks; it has no cluster to compare with here.)

Results go to bench/results/cluster.json. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from kflow.cluster import supervisor

SLEEP = 0.5
COMMAND = ["python", "-c", f"import time; time.sleep({SLEEP})"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95),
            "mean": statistics.fmean(values), "n": len(values)}


def pod_latencies(kubeconfig: Path, count: int) -> tuple[list[float], list[float]]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    core = client.CoreV1Api(api)
    namespace = f"bench-{int(time.time())}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    while not core.list_namespaced_service_account(namespace).items:
        time.sleep(0.1)
    seen: dict[str, dict[str, float]] = {}
    done = threading.Event()
    stream = watch.Watch()

    def watcher() -> None:
        try:
            watch_pods()
        except Exception:  # the stream breaks when the namespace goes away at the end
            if not done.is_set():
                raise

    def watch_pods() -> None:
        for event in stream.stream(core.list_namespaced_pod, namespace, timeout_seconds=600):
            pod = event["object"]
            phase = pod.status.phase if pod.status else None
            times = seen.setdefault(pod.metadata.name, {})
            if phase in ("Running", "Succeeded", "Failed") and phase not in times:
                times[phase] = time.monotonic()
                if phase == "Succeeded" and "Running" not in times:
                    times["Running"] = times[phase]
            if done.is_set():
                break

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    time.sleep(0.5)
    to_running: list[float] = []
    to_done: list[float] = []
    for i in range(count):
        name = f"p{i:03d}"
        body = client.V1Pod(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodSpec(restart_policy="Never", containers=[client.V1Container(
                name="c", image="python:3.11-slim", command=COMMAND)]),
        )
        created = time.monotonic()
        core.create_namespaced_pod(namespace, body)
        deadline = created + 120
        while "Succeeded" not in seen.get(name, {}) and time.monotonic() < deadline:
            if "Failed" in seen.get(name, {}):
                raise SystemExit(f"pod {name} failed")
            time.sleep(0.01)
        times = seen.get(name, {})
        if "Succeeded" not in times:
            raise SystemExit(f"pod {name} did not finish in 120 s")
        to_running.append(times["Running"] - created)
        to_done.append(times["Succeeded"] - created)
        print(f"  pod {i + 1:>3}/{count}: running after {to_running[-1]:.2f}s, "
              f"succeeded after {to_done[-1]:.2f}s", flush=True)
    done.set()
    stream.stop()
    core.delete_namespace(namespace)
    thread.join(timeout=10)
    return to_running, to_done


def peer_latencies(count: int) -> list[float]:
    """The same command as a plain local process (python resolves like on the node)."""
    python = [sys.executable, *COMMAND[1:]]
    results = []
    for _ in range(count):
        started = time.monotonic()
        subprocess.run(python, check=True)
        results.append(time.monotonic() - started)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=50)
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": {"cpus": len(__import__("os").sched_getaffinity(0)),
                                           "python": platform.python_version()}}
    with tempfile.TemporaryDirectory(prefix="kflow-bench-") as tmp:
        directory = Path(tmp) / "cluster"
        started = time.monotonic()
        report = supervisor.up(directory)
        results["cold_up_seconds"] = time.monotonic() - started
        print(f"cold up: {results['cold_up_seconds']:.1f}s", flush=True)
        supervisor.down(directory)
        started = time.monotonic()
        report = supervisor.up(directory)
        results["warm_up_seconds"] = time.monotonic() - started
        print(f"warm up: {results['warm_up_seconds']:.1f}s", flush=True)
        results["k8s_version"] = report.state.k8s_version
        try:
            running, succeeded = pod_latencies(report.layout.kubeconfig, args.pods)
        finally:
            supervisor.down(directory)
    peer = peer_latencies(args.pods)
    results["pods"] = args.pods
    results["container_command"] = COMMAND
    results["create_to_running"] = summary(running)
    results["create_to_succeeded"] = summary(succeeded)
    results["peer_local_process"] = summary(peer)
    results["ratio_succeeded_vs_local_process"] = {
        "p50": results["create_to_succeeded"]["p50"] / results["peer_local_process"]["p50"],
        "p95": results["create_to_succeeded"]["p95"] / results["peer_local_process"]["p95"],
    }
    out = Path(__file__).parent / "results" / "cluster.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    r, s, p = (results[k] for k in ("create_to_running", "create_to_succeeded",
                                    "peer_local_process"))
    print(f"create→Running   p50 {r['p50']:.2f}s  p95 {r['p95']:.2f}s")
    print(f"create→Succeeded p50 {s['p50']:.2f}s  p95 {s['p95']:.2f}s")
    print(f"peer (local process) p50 {p['p50']:.2f}s  p95 {p['p95']:.2f}s")
    ratio = results["ratio_succeeded_vs_local_process"]
    print(f"ratio pod/local process: p50 {ratio['p50']:.2f}x  p95 {ratio['p95']:.2f}x")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
