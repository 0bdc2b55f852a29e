"""Reading one artifact from each of the last 100 runs: kflow's client API against
Metaflow's client, on the same flow, in the same script.

    .venv/bin/python bench/client.py                 # ~7 min on 2 cores
    .venv/bin/python bench/client.py --runs 20 --s3-runs 10 --repeats 1   # smoke, ~2 min

What is measured: in a fresh Python process each time (cold: no client cache), the
read a user's script makes,

    runs = [r.data.value for r in islice(Flow("TinyFlow"), count)]

from `Flow(...)` to the list (the imports are timed apart, and the process' wall as
seen from here), and `Flow("TinyFlow").latest_successful_run.data.value` alone. Each
`value` is a string made by the run's `end` step, new on every run, so every read
fetches its own object (no content-addressed sharing, no cache). Repeated --repeats
times (3), the median reported; nothing is asserted (the issue's target: kflow
under 1 s for 100 runs).

- kflow: `bench/flows/kflow/tiny.py` deployed on the embedded cluster, --runs (100)
  FlowRuns submitted through the operator at once and awaited; then the reader runs
  with a user's configuration from the environment (KUBECONFIG, KFLOW_NAMESPACE,
  KFLOW_S3_CREDENTIALS, KFLOW_CONFIG="", HOME in a tmp dir): *live* (the FlowRuns
  still exist: runs come from them and the store), then *archive* (every FlowRun
  deleted: runs come from the store alone).
- Metaflow 2.19 (bench/.venv-metaflow, see bench/README.md): `python tiny.py run`
  with local metadata, --runs times with the local datastore and --s3-runs times
  with the S3 datastore (the cluster's own SeaweedFS, the store kflow's pods use),
  --jobs (2) at a time; then `from metaflow import Flow, namespace; namespace(None)`
  and the same read. Metaflow's S3 mode takes ~4 s per run here: 100 of them, two at
  a time, take ~3-3.5 min, which keeps the whole bench near 7 min, so --s3-runs
  defaults to --runs. With fewer (--s3-runs 30 on a slower machine), the S3
  comparison reads that many runs on both sides (kflow then reads both counts).
  Metaflow's client caches artifacts on disk across processes: its cold reads get an
  empty METAFLOW_CLIENT_CACHE_PATH each; `metaflow_*_warm` reuse one (its default).

Ratios are kflow / Metaflow (> 1: kflow slower). After the timed reads, one more
kflow read of each kind runs under cProfile; its top functions go to the JSON
(`profile`) and the log, to show where the time goes. Results go to
bench/results/client.json. The embedded cluster, namespace and operator are brought
up with bench/scheduling.py's helpers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from artifacts import check_twins, clean_env, metaflow_args, metaflow_python
from scheduling import (
    FLOWS,
    NAMESPACE,
    Kube,
    create_run,
    delete_runs,
    deploy,
    embedded_cluster,
    leftovers,
    machine_facts,
    metaflow_store_env,
    prepare_namespace,
    running_operator,
    wait_runs,
)

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "client.json"
FLOW_FILE = "tiny.py"
FLOW_CLASS = "TinyFlow"
ARTIFACT = "value"
TARGET_S = 1.0
RUN_TIMEOUT_S = 900.0
PROFILE_TOP = 25

READER = r"""
import json, sys, time
started = time.perf_counter()
from itertools import islice
system, what, count, profile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if system == "kflow":
    from kflow import Flow
else:
    from metaflow import Flow, namespace
    namespace(None)
imported = time.perf_counter()


def read():
    global opened
    flow = Flow("TinyFlow")
    opened = time.perf_counter()
    if what == "latest":
        return [flow.latest_successful_run.data.value]
    return [r.data.value for r in islice(flow, count)]


if profile:
    import cProfile
    profiler = cProfile.Profile()
    values = profiler.runcall(read)
    profiler.dump_stats(profile)
else:
    values = read()
done = time.perf_counter()
print(json.dumps({"import_s": imported - started, "read_s": done - imported,
                  "flow_s": opened - imported, "loop_s": done - opened,
                  "values": len(values), "distinct": len(set(values)),
                  "sample": str(values[0])}))
"""


# ------------------------------------------------------------------- readers


def operator_tree() -> str:
    """HEAD plus a digest of the uncommitted changes under operator/: the code read."""
    git = ["git", "-C", str(BENCH.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    diff = subprocess.run([*git, "diff", "HEAD", "--", "operator"], capture_output=True).stdout
    return f"{head}+{hashlib.sha256(diff).hexdigest()[:12]}" if diff else head


def read_once(python: Path, env: dict[str, str], system: str, what: str, count: int,
              profile: Path | None = None) -> dict[str, Any]:
    """One fresh process running READER; its figures plus the process' wall. Metaflow's
    client keeps artifacts in a disk cache (METAFLOW_CLIENT_CACHE_PATH, by default
    /tmp/metaflow_client, kept across processes): cold reads get an empty one."""
    if system == "metaflow" and "METAFLOW_CLIENT_CACHE_PATH" not in env:
        cache = Path(tempfile.mkdtemp(prefix="mf-cache-", dir=env["HOME"]))
        env = {**env, "METAFLOW_CLIENT_CACHE_PATH": str(cache)}
    started = time.monotonic()
    done = subprocess.run([str(python), "-c", READER, system, what, str(count),
                           str(profile or "")], env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, cwd=env["HOME"])
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{system} reader ({what} {count}) failed:\n{done.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    expected = 1 if what == "latest" else count
    if out["values"] != expected or out["distinct"] != expected:
        raise SystemExit(f"{system} reader ({what} {count}) read {out['values']} values, "
                         f"{out['distinct']} distinct; expected {expected}")
    return out


def summarise(reads: list[dict[str, Any]]) -> dict[str, Any]:
    return {"read_s": statistics.median(r["read_s"] for r in reads),
            "read_s_all": [r["read_s"] for r in reads],
            "import_s": statistics.median(r["import_s"] for r in reads),
            "import_read_s": statistics.median(r["import_s"] + r["read_s"] for r in reads),
            "flow_s": statistics.median(r["flow_s"] for r in reads),
            "loop_s": statistics.median(r["loop_s"] for r in reads),
            "process_s": statistics.median(r["process_s"] for r in reads),
            "sample": reads[0]["sample"]}


def profile_top(python: Path, stats_file: Path) -> list[str]:
    """The PROFILE_TOP functions by cumulative time, as pstats prints them."""
    code = ("import pstats, sys; s = pstats.Stats(sys.argv[1]); "
            f"s.sort_stats('cumulative').print_stats({PROFILE_TOP})")
    done = subprocess.run([str(python), "-c", code, str(stats_file)], capture_output=True,
                          text=True, timeout=60)
    lines = done.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return [line.rstrip() for line in lines[start:] if line.strip()]


def profile_calls(python: Path, stats_file: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """Calls and cumulative seconds of the functions named `names` (any module)."""
    code = ("import json, pstats, sys; s = pstats.Stats(sys.argv[1]).stats; out = {}\n"
            "for (f, line, name), (cc, nc, tt, ct, _) in s.items():\n"
            "    if name in sys.argv[2:]:\n"
            "        key = f'{f.rsplit(\"/\", 2)[-1]}:{name}'\n"
            "        out[key] = {'calls': nc, 'cumulative_s': round(ct, 4)}\n"
            "print(json.dumps(out))")
    done = subprocess.run([str(python), "-c", code, str(stats_file), *names],
                          capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout or "{}")  # type: ignore[no-any-return]


STORE_CALLS = ("runs", "_list", "list_runs", "start_meta", "list_attempts", "read_meta",
               "read_index", "load", "end_task", "_refs", "_make_request", "_parallel",
               "list_namespaced_custom_object", "from_config")


# ---------------------------------------------------------------- kflow side


def kflow_env(kube: Kube, home: Path) -> dict[str, str]:
    """A user's script on the embedded cluster: configuration from the environment."""
    return clean_env({"KUBECONFIG": str(kube.kubeconfig), "KFLOW_NAMESPACE": NAMESPACE,
                      "KFLOW_S3_CREDENTIALS": str(kube.s3_credentials),
                      "KFLOW_CONFIG": ""}, home)


def kflow_runs(kube: Kube, operator: subprocess.Popen[bytes], flow: str,
               count: int) -> dict[str, Any]:
    names = {f"tiny-{i:03d}" for i in range(count)}
    started = time.time()
    for name in sorted(names):
        create_run(kube, name, flow, {})
    seen = wait_runs(kube, names, operator, timeout=RUN_TIMEOUT_S)
    phases = [p for p, _ in seen.values()]
    if phases.count("Succeeded") != count:
        raise SystemExit(f"kflow: {phases.count('Succeeded')} of {count} runs succeeded")
    return {"runs": count, "wall_s": max(t for _, t in seen.values()) - started}


# ------------------------------------------------------------- Metaflow side


def metaflow_env(kube: Kube, work: Path, mode: str) -> dict[str, str]:
    """Local metadata in <work>/mf-<mode>; the datastore local there, or S3."""
    root = work / f"mf-{mode}"
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = clean_env({"METAFLOW_DEFAULT_METADATA": "local",
                     "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(root / "sysroot")}, home)
    env.update(metaflow_store_env(kube, mode, "metaflow/client"))
    return env


def metaflow_runs(mf: Path, mf_args: tuple[str, ...], env: dict[str, str], count: int,
                  jobs: int) -> dict[str, Any]:
    """`python tiny.py run` `count` times, `jobs` at a time."""
    logs = Path(env["HOME"]).parent / "logs"
    logs.mkdir(exist_ok=True)

    def one(i: int) -> float:
        log = logs / f"run-{i:03d}.log"
        with log.open("wb") as out:
            started = time.monotonic()
            done = subprocess.run([str(mf), str(FLOWS / "metaflow" / FLOW_FILE), *mf_args,
                                   "run"], cwd=env["HOME"], env=env, stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S)
        if done.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise SystemExit(f"Metaflow run {i} failed ({done.returncode}):\n{tail}")
        return time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(jobs) as pool:
        walls = list(pool.map(one, range(count)))
    return {"runs": count, "jobs": jobs, "wall_s": time.monotonic() - started,
            "run_wall_p50_s": statistics.median(walls)}


# --------------------------------------------------------------------- report


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
    if not a or not b:
        return None
    return a[key] / b[key] if b[key] else None


def report(reads: dict[str, dict[str, list[dict[str, Any]]]], counts: dict[str, int]
           ) -> dict[str, Any]:
    """reads: system ("kflow_live", ...) → case ("runs", "s3_runs", "latest") → reads."""
    out: dict[str, Any] = {"reads": {}, "ratios": {}}
    for system, cases in reads.items():
        out["reads"][system] = {case: summarise(r) | {"count": counts.get(case, 1)}
                                for case, r in cases.items() if r}
    r = out["reads"]
    for kflow in ("kflow_live", "kflow_archive"):
        for peer, case in (("metaflow_local", "runs"), ("metaflow_s3", "runs"),
                           ("metaflow_s3", "s3_runs"), ("metaflow_local", "latest"),
                           ("metaflow_s3", "latest")):
            for key in ("read_s", "import_read_s"):
                got = ratio(r.get(kflow, {}).get(case), r.get(peer, {}).get(case), key)
                if got is not None:
                    out["ratios"].setdefault(key, {})[f"{kflow}/{peer} {case}"] = got
    live = r.get("kflow_live", {}).get("runs")
    out["target_under_1s"] = live["read_s"] < TARGET_S if live else None
    return out


def print_table(results: dict[str, Any]) -> None:
    head = (f"{'system':<19} {'read':<22} {'median s':>9} {'each s':>18} {'Flow() s':>9} "
            f"{'loop s':>7} {'import s':>9} {'import+read':>12} {'process s':>10}")
    print()
    print(head)
    print("-" * len(head))
    for system, cases in results["reads"].items():
        for case, s in cases.items():
            label = "latest_successful_run" if case == "latest" else f"{s['count']} runs"
            each = " ".join(f"{x:.2f}" for x in s["read_s_all"])
            print(f"{system:<19} {label:<22} {s['read_s']:>9.3f} {each:>18} "
                  f"{s['flow_s']:>9.3f} {s['loop_s']:>7.3f} {s['import_s']:>9.2f} "
                  f"{s['import_read_s']:>12.3f} {s['process_s']:>10.2f}")
    print("\nratio = kflow / Metaflow (> 1: kflow slower); read = from Flow(...) to the list "
          "(kflow imports its Kubernetes and S3 clients there, lazily), import+read adds "
          "`from ... import Flow`; Metaflow cold = an empty client cache per process, "
          "_warm = its disk cache kept from an earlier read (Metaflow's default)")
    ratios = results["ratios"]
    for name in ratios.get("read_s", {}):
        print(f"  {name:<45} read {ratios['read_s'][name]:6.2f}x   import+read "
              f"{ratios['import_read_s'][name]:6.2f}x")
    live = results["reads"].get("kflow_live", {}).get("runs")
    if live:
        print(f"\nkflow, {live['count']} runs, live: {live['read_s']:.2f} s (target < "
              f"{TARGET_S:.0f} s: {'met' if results['target_under_1s'] else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100,
                        help="kflow runs and Metaflow local-datastore runs (and reads)")
    parser.add_argument("--s3-runs", type=int, default=100,
                        help="Metaflow S3-datastore runs (~4 s each here); kflow also "
                             "reads this many for the matched comparison")
    parser.add_argument("--repeats", type=int, default=3, help="fresh reader processes")
    parser.add_argument("--jobs", type=int, default=2, help="Metaflow runs at a time")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the profiled kflow reads")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.s3_runs = min(args.s3_runs, args.runs)
    check_twins((FLOW_FILE,))
    mf = metaflow_python()
    mf_args = metaflow_args(mf)
    machine = machine_facts(mf)
    machine["operator_tree_at_start"] = operator_tree()
    began = time.monotonic()
    counts = {"runs": args.runs, "s3_runs": args.s3_runs}
    cases = {"runs": ("loop", args.runs), "s3_runs": ("loop", args.s3_runs),
             "latest": ("latest", 1)}
    if args.s3_runs == args.runs:
        del cases["s3_runs"]
    reads: dict[str, dict[str, list[dict[str, Any]]]] = {
        s: {c: [] for c in cases} for s in ("kflow_live", "kflow_archive")}
    reads["metaflow_local"] = {"runs": [], "latest": []}
    s3_case = "s3_runs" if "s3_runs" in cases else "runs"
    reads["metaflow_s3"] = {s3_case: [], "latest": []}
    # Metaflow's default: its client's disk cache kept from an earlier read (not cold).
    reads["metaflow_local_warm"] = {"runs": []}
    reads["metaflow_s3_warm"] = {s3_case: []}
    prep: dict[str, Any] = {}
    profile: dict[str, Any] = {}

    def log(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", flush=True)

    def read(system: str, python: Path, env: dict[str, str], case: str) -> None:
        what, count = cases[case]
        got = read_once(python, env, system.split("_")[0], what, count)
        reads[system][case].append(got)
        log(f"{system:<19} {case:<8} read {got['read_s']:.3f}s (Flow() {got['flow_s']:.3f}s, "
            f"loop {got['loop_s']:.3f}s; import {got['import_s']:.2f}s, process "
            f"{got['process_s']:.2f}s)")

    def profiled(system: str, env: dict[str, str], work: Path) -> None:
        stats = work / f"{system}.prof"
        got = read_once(Path(sys.executable), env, "kflow", "loop", args.runs, stats)
        top = profile_top(Path(sys.executable), stats)
        profile[system] = {"read_s_profiled": got["read_s"], "top_cumulative": top,
                           "calls": profile_calls(Path(sys.executable), stats, STORE_CALLS)}
        log(f"{system} under cProfile: {got['read_s']:.2f}s\n" + "\n".join(top))

    with tempfile.TemporaryDirectory(prefix="kflow-bench-client-") as tmp:
        work = Path(tmp) / "work"
        (work / "home").mkdir(parents=True)
        with embedded_cluster(Path(tmp) / "cluster") as kube:
            prepare_namespace(kube)
            with running_operator(kube, work) as operator:
                flow = deploy(kube, FLOW_FILE, FLOW_CLASS)
                prep["kflow"] = kflow_runs(kube, operator, flow, args.runs)
                log(f"kflow: {args.runs} FlowRuns succeeded, "
                    f"{prep['kflow']['wall_s']:.1f}s from the first create")
                envs = {"kflow_live": kflow_env(kube, work / "home"),
                        "metaflow_local": metaflow_env(kube, work, "local"),
                        "metaflow_s3": metaflow_env(kube, work, "s3")}
                for mode, count in (("local", args.runs), ("s3", args.s3_runs)):
                    prep[f"metaflow_{mode}"] = metaflow_runs(
                        mf, mf_args, envs[f"metaflow_{mode}"], count, args.jobs)
                    log(f"Metaflow {mode}: {count} runs in "
                        f"{prep[f'metaflow_{mode}']['wall_s']:.1f}s ({args.jobs} at a time)")
                for mode in ("local", "s3"):
                    cache = work / f"mf-{mode}" / "warm-cache"
                    envs[f"metaflow_{mode}_warm"] = {**envs[f"metaflow_{mode}"],
                                                     "METAFLOW_CLIENT_CACHE_PATH": str(cache)}
                    for case in reads[f"metaflow_{mode}_warm"]:     # fills the cache
                        read_once(mf, envs[f"metaflow_{mode}_warm"], "metaflow", *cases[case])
                pythons = {"kflow_live": Path(sys.executable), "metaflow_local": mf,
                           "metaflow_s3": mf, "metaflow_local_warm": mf,
                           "metaflow_s3_warm": mf}
                for _ in range(args.repeats):
                    for system in pythons:
                        for case in reads[system]:
                            read(system, pythons[system], envs[system], case)
                if not args.no_profile:
                    profiled("kflow_live", envs["kflow_live"], work)
                delete_runs(kube)
                log("every FlowRun deleted")
                for _ in range(args.repeats):
                    for case in reads["kflow_archive"]:
                        read("kflow_archive", Path(sys.executable), envs["kflow_live"], case)
                if not args.no_profile:
                    profiled("kflow_archive", envs["kflow_live"], work)
        time.sleep(1)
        left = leftovers(tmp)
    results = {"machine": machine,
               "config": {"runs": args.runs, "s3_runs": args.s3_runs, "repeats": args.repeats,
                          "jobs": args.jobs, "flow": f"bench/flows/*/{FLOW_FILE}",
                          "artifact": ARTIFACT},
               "prepare": prep, **report(reads, counts), "profile": profile,
               "leftover_processes": left, "bench_seconds": time.monotonic() - began}
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    results["machine"]["operator_tree_at_end"] = operator_tree()
    if results["machine"]["operator_tree_at_end"] != machine["operator_tree_at_start"]:
        print("WARNING: operator/ changed during the bench: the reads may mix two versions")
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    if left:
        print(f"WARNING: processes left over: {left}")
    print(f"\nload average at start {machine['load_avg_at_start']}, at end "
          f"{results['machine']['load_avg_at_end']}; {results['bench_seconds']:.0f}s in all; "
          f"written to {args.out}")


if __name__ == "__main__":
    main()
