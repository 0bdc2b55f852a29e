"""The image map: built-ins, file entries, Docker ENTRYPOINT/CMD semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from kflow.cluster.node.images import (
    ImageMap,
    UnmappedImage,
    builtin_entries,
    load_image_map,
    normalize,
    parse_image_map,
    plan_launch,
    repository,
)

PY = "/venv/bin/python"
BUILTIN = ImageMap(builtin_entries(PY))


@pytest.mark.parametrize(
    ("ref", "repo"),
    [
        ("python:3.11-slim", "python"),
        ("localhost:5000/kflow-runner:dev", "localhost:5000/kflow-runner"),
        ("ghcr.io/x/y@sha256:abc", "ghcr.io/x/y"),
        ("busybox", "busybox"),
    ],
)
def test_repository(ref: str, repo: str) -> None:
    assert repository(ref) == repo


def test_normalize() -> None:
    assert normalize("docker.io/library/python:3.11") == "python:3.11"
    assert normalize("docker.io/acme/x") == "acme/x"


@pytest.mark.parametrize(
    "image",
    ["ghcr.io/acme/kflow-runner:0.1.0", "kflow-runner", "localhost:5000/kflow-runner:dev"],
)
def test_kflow_runner_any_registry_and_tag(image: str) -> None:
    plan = plan_launch(BUILTIN, image, None, ["--run", "r1"])
    assert plan.argv == (PY, "-m", "kflow.runner", "--run", "r1")
    assert ("PYTHONUNBUFFERED", "1") in plan.env


def test_kflow_operator() -> None:
    assert plan_launch(BUILTIN, "ghcr.io/acme/kflow-operator:1", None, None).argv == (
        PY,
        "-m",
        "kflow_operator",
    )


def test_python_image_semantics() -> None:
    assert plan_launch(BUILTIN, "python:3.11-slim", None, None).argv == (PY,)
    assert plan_launch(BUILTIN, "docker.io/library/python:3.12", None, ["-c", "1"]).argv == (
        "-c",
        "1",
    )
    # command replaces the entrypoint and drops cmd; args replace cmd
    assert plan_launch(BUILTIN, "python:3.11", ["python", "-c"], ["print(1)"]).argv == (
        "python",
        "-c",
        "print(1)",
    )
    assert plan_launch(BUILTIN, "python:3.11", ["python"], None).argv == ("python",)


def test_unmapped_image_needs_a_command() -> None:
    with pytest.raises(UnmappedImage, match="KFLOW_IMAGE_MAP"):
        plan_launch(BUILTIN, "busybox:1.36", None, ["echo"])
    assert plan_launch(BUILTIN, "busybox:1.36", ["sh", "-c", "true"], None).argv == (
        "sh",
        "-c",
        "true",
    )


def test_file_entries_override_builtins(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(
        "images:\n"
        "  - match: 'python:3.12*'\n"
        "    entrypoint: ['{python}', '-X', 'dev']\n"
        "  - match: 'ghcr.io/acme/trainer*'\n"
        "    entrypoint: ['{python}', '-m', 'acme.train']\n"
        "    cmd: ['--epochs', '1']\n"
        "    env: {MODE: fast}\n"
        "    workingDir: /srv\n"
    )
    image_map = load_image_map(str(path), PY)
    assert plan_launch(image_map, "python:3.12-slim", None, None).argv == (PY, "-X", "dev")
    assert plan_launch(image_map, "python:3.11-slim", None, None).argv == (PY,)
    plan = plan_launch(image_map, "ghcr.io/acme/trainer:v2", None, None)
    assert plan.argv == (PY, "-m", "acme.train", "--epochs", "1")
    assert plan.env == (("MODE", "fast"),)
    assert plan.working_dir == "/srv"
    with pytest.raises(UnmappedImage, match=str(path)):
        plan_launch(image_map, "busybox", None, None)


def test_bad_map_is_rejected() -> None:
    with pytest.raises(ValueError, match="match"):
        parse_image_map({"images": [{"entrypoint": ["x"]}]}, PY)
    with pytest.raises(ValueError, match="list"):
        parse_image_map({"images": {"a": 1}}, PY)
