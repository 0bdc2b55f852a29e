"""Local runs: `python flow.py run --local` (kflow) beside `python flow.py run` (Metaflow).

    .venv/bin/python bench/local.py              # ~3-4 min on 2 cores
    .venv/bin/python bench/local.py --repeats 1 --width 20   # smoke, ~30 s

Both systems run the whole flow on this machine, no cluster and no S3 server:
kflow with `--local` (the planner in-process, one `python -m kflow.runner` process
per task, the local store in `KFLOW_STORE_DIR`), Metaflow 2.19 from PyPI
(bench/.venv-metaflow, made on first use, see bench/README.md) with its local
metadata and local datastore (`METAFLOW_DEFAULT_METADATA=local`,
`METAFLOW_DEFAULT_DATASTORE=local`, its sysroot in the run's tmp folder). Both at
most 16 tasks at once (`--max-workers 16`, both defaults).

Flows: `bench/flows/{kflow,metaflow}/linear3.py` (start -> middle -> end) and
`foreach100.py` (start -> body x --width (100) -> join -> end); twins, checked (only
the import line differs). Each step's user code takes microseconds, so what is
measured is the orchestration.

- **wall**: the command's wall time, from spawn to exit (everything: Python start,
  graph, code package, every task, the end).
- **CPU per task**: user + system CPU seconds of the command and every process it
  waited for (`RUSAGE_CHILDREN` before/after), divided by the number of tasks (3;
  width + 3). With user code of microseconds this is the per-task overhead: process
  start, imports, reading the parents, storing the artifacts and the records, plus
  the orchestrator's own share spread over the tasks.
- **step gap**: a parent's user code end -> its child's user code start, from the
  flows' own `time.time()` marks (BENCH_MARKS), both systems alike.

Repeats are interleaved (each repeat runs every scenario on both systems in turn);
medians reported; ratios are kflow / Metaflow (< 1: kflow faster). Nothing is
asserted. Results go to bench/results/local.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifacts import check_twins, clean_env, metaflow_args, metaflow_python, step_gaps
from scheduling import machine_facts

BENCH = Path(__file__).resolve().parent
FLOWS = BENCH / "flows"
RESULTS = BENCH / "results" / "local.json"
SCENARIOS = {"linear3": "linear3.py", "foreach100": "foreach100.py"}
PARENTS = {"linear3": {"middle": ["start"], "end": ["middle"]},
           "foreach100": {"body": ["start"], "join": ["body"], "end": ["join"]}}
SYSTEMS = ("kflow", "metaflow")
RUN_TIMEOUT_S = 600.0
MAX_WORKERS = 16


@dataclass
class Result:
    system: str
    scenario: str
    wall_s: float
    cpu_s: float
    tasks: int
    gaps: list[float]

    @property
    def cpu_per_task_s(self) -> float:
        return self.cpu_s / self.tasks


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(system: str, scenario: str, width: int, work: Path, label: str,
             mf: Path, mf_args: tuple[str, ...]) -> Result:
    rundir = work / label
    rundir.mkdir()
    marks = rundir / "marks"
    options = [f"--width={width}"] if scenario == "foreach100" else []
    if system == "kflow":
        env = clean_env({"BENCH_MARKS": str(marks),
                         "KFLOW_STORE_DIR": str(rundir / "store")}, rundir)
        argv = [sys.executable, str(FLOWS / "kflow" / SCENARIOS[scenario]), "run", "--local",
                "--max-workers", str(MAX_WORKERS), *options]
    else:
        env = clean_env({"BENCH_MARKS": str(marks), "METAFLOW_DEFAULT_METADATA": "local",
                         "METAFLOW_DEFAULT_DATASTORE": "local",
                         "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(rundir / "sysroot")},
                        rundir)
        argv = [str(mf), str(FLOWS / "metaflow" / SCENARIOS[scenario]), *mf_args, "run",
                "--max-workers", str(MAX_WORKERS), *options]
    log = rundir / "run.log"
    cpu_before = _children_cpu()
    with log.open("wb") as out:
        began = time.monotonic()
        done = subprocess.run(argv, cwd=rundir, env=env, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S)
        wall = time.monotonic() - began
    cpu = _children_cpu() - cpu_before
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{system} {label} failed ({done.returncode}):\n{tail}")
    tasks = 3 if scenario == "linear3" else width + 3
    return Result(system, scenario, wall, cpu, tasks, step_gaps(marks, PARENTS[scenario]))


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def summarise(results: list[Result]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scenario in SCENARIOS:
        entry: dict[str, Any] = {}
        for system in SYSTEMS:
            mine = [r for r in results if r.system == system and r.scenario == scenario]
            gaps = sorted(g for r in mine for g in r.gaps)
            entry[system] = {
                "wall_s": median([r.wall_s for r in mine]),
                "walls_s": [round(r.wall_s, 3) for r in mine],
                "cpu_s": median([r.cpu_s for r in mine]),
                "cpu_per_task_s": median([r.cpu_per_task_s for r in mine]),
                "tasks": mine[0].tasks if mine else 0,
                "step_gap_p50_s": median(gaps),
                "step_gap_p95_s": gaps[min(len(gaps) - 1, round(0.95 * (len(gaps) - 1)))]
                if gaps else None,
            }
        entry["ratio_kflow_over_metaflow"] = {
            key: ratio(entry["kflow"][key], entry["metaflow"][key])
            for key in ("wall_s", "cpu_per_task_s", "step_gap_p50_s")}
        out[scenario] = entry
    return out


def print_table(summary: dict[str, Any]) -> None:
    print(f"{'flow':<12}{'system':<10}{'wall s':>9}{'CPU/task s':>12}{'gap p50 ms':>12}")
    for scenario, entry in summary.items():
        for system in SYSTEMS:
            row = entry[system]
            gap = row["step_gap_p50_s"]
            print(f"{scenario:<12}{system:<10}{row['wall_s']:>9.2f}"
                  f"{row['cpu_per_task_s']:>12.3f}"
                  f"{(gap * 1000 if gap is not None else float('nan')):>12.0f}")
        ratios = entry["ratio_kflow_over_metaflow"]
        print(f"{'':<12}{'ratio':<10}{ratios['wall_s']:>8.2f}x{ratios['cpu_per_task_s']:>11.2f}x"
              f"{ratios['step_gap_p50_s'] or float('nan'):>11.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=100, help="foreach width")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    check_twins(SCENARIOS.values())
    mf = metaflow_python()
    mf_args = metaflow_args(mf)
    machine = machine_facts(mf)
    began = time.monotonic()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="kflow-bench-local-") as tmp:
        work = Path(tmp)
        for repeat in range(args.repeats):
            for scenario in SCENARIOS:
                for system in SYSTEMS:
                    label = f"{system}-{scenario}-{repeat}"
                    result = run_once(system, scenario, args.width, work, label, mf, mf_args)
                    results.append(result)
                    print(f"{label}: wall {result.wall_s:.2f} s, CPU {result.cpu_s:.2f} s "
                          f"({result.cpu_per_task_s * 1000:.0f} ms/task)", flush=True)
    machine["load_avg_at_end"] = os.getloadavg()
    summary = summarise(results)
    doc = {"machine": machine,
           "config": {"repeats": args.repeats, "width": args.width,
                      "max_workers": MAX_WORKERS},
           "seconds": round(time.monotonic() - began, 1),
           "scenarios": summary,
           "runs": [{"system": r.system, "scenario": r.scenario, "wall_s": round(r.wall_s, 3),
                     "cpu_s": round(r.cpu_s, 3), "tasks": r.tasks} for r in results]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print_table(summary)
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
