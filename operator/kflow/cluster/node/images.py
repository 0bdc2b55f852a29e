"""The image map: which local command stands in for a container image.

Images carry no filesystem on the process node, so a container runs either its own
`command` or what the image map says the image's ENTRYPOINT/CMD are. Docker
semantics apply: `command` replaces the entrypoint (and drops the image's cmd),
`args` replaces cmd.

Built-in entries (checked after the file's entries):

* repositories ending in `kflow-runner` (any registry, any tag) →
  entrypoint `[<python>, -m, kflow.runner]`, env `PYTHONUNBUFFERED=1`
* repositories ending in `kflow-operator` → `[<python>, -m, kflow_operator]`, same env
* `python` (`python:*`, `docker.io/library/python:*`) → entrypoint `[]`, cmd `[<python>]`

`<python>` is the node's own `sys.executable`, so `python` resolves to the venv
kflow runs from. Anything else (busybox, ubuntu, …) is unmapped: such a container
must give a `command`.

Map file (`--image-map PATH` or env `KFLOW_IMAGE_MAP`), YAML::

    images:
      - match: "ghcr.io/acme/trainer*"       # fnmatch glob on the image reference
        entrypoint: ["{python}", "-m", "acme.train"]
        cmd: ["--epochs", "1"]               # optional, default []
        env: {PYTHONUNBUFFERED: "1"}         # optional, like the image's ENV
        workingDir: /srv/acme                # optional, like the image's WORKDIR
      - match: "busybox*"
        entrypoint: ["/bin/sh"]

A pattern matches the reference as written, the reference with `docker.io/` and
`library/` removed, and (for patterns without `:` or `@`) the repository alone, so
`python` matches `python:3.11-slim`. The first matching entry wins; file entries
come before the built-ins, so a file can override them. `{python}` in any string
value is replaced by the node's sys.executable.

Pure apart from `load_image_map` reading the file.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENV_VAR = "KFLOW_IMAGE_MAP"


@dataclass(frozen=True)
class ImageEntry:
    """One image's stand-in: ENTRYPOINT, CMD, ENV and WORKDIR."""

    match: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str | None = None


@dataclass(frozen=True)
class ImageMap:
    """Ordered entries; `source` names where they came from (for error messages)."""

    entries: tuple[ImageEntry, ...]
    source: str | None = None


@dataclass(frozen=True)
class LaunchPlan:
    """The argv, extra env and working dir a container starts with."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = field(default=())
    working_dir: str | None = None


class UnmappedImage(Exception):
    """No command and no map entry: the container cannot start."""


def builtin_entries(python: str) -> tuple[ImageEntry, ...]:
    unbuffered = (("PYTHONUNBUFFERED", "1"),)
    return (
        ImageEntry("kflow-runner", (python, "-m", "kflow.runner"), (), unbuffered),
        ImageEntry("*/kflow-runner", (python, "-m", "kflow.runner"), (), unbuffered),
        ImageEntry("kflow-operator", (python, "-m", "kflow_operator"), (), unbuffered),
        ImageEntry("*/kflow-operator", (python, "-m", "kflow_operator"), (), unbuffered),
        ImageEntry("python", (), (python,)),
    )


def _strings(value: Any, python: str, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list of strings")
    return tuple(str(v).replace("{python}", python) for v in value)


def parse_image_map(data: Any, python: str, source: str | None = None) -> ImageMap:
    """Entries of a parsed map file followed by the built-ins."""
    entries: list[ImageEntry] = []
    raw = (data or {}).get("images", []) if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise ValueError("image map: `images` must be a list")
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("match"), str):
            raise ValueError(f"image map entry {i}: needs a string `match`")
        env = item.get("env") or {}
        if not isinstance(env, dict):
            raise ValueError(f"image map entry {i}: `env` must be a mapping")
        working_dir = item.get("workingDir")
        entries.append(
            ImageEntry(
                match=item["match"],
                entrypoint=_strings(item.get("entrypoint"), python, "entrypoint"),
                cmd=_strings(item.get("cmd"), python, "cmd"),
                env=tuple((str(k), str(v).replace("{python}", python)) for k, v in env.items()),
                working_dir=str(working_dir).replace("{python}", python) if working_dir else None,
            )
        )
    return ImageMap(tuple(entries) + builtin_entries(python), source)


def load_image_map(path: str | None, python: str) -> ImageMap:
    """The map from `path` (None: built-ins only). Raises on an unreadable file."""
    if not path:
        return ImageMap(builtin_entries(python), None)
    data = yaml.safe_load(Path(path).read_text())
    return parse_image_map(data, python, path)


def normalize(reference: str) -> str:
    """`docker.io/library/python:3.11` → `python:3.11`."""
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if reference.startswith(prefix):
            reference = reference[len(prefix) :]
            break
    return reference.removeprefix("library/")


def repository(reference: str) -> str:
    """The reference without tag and digest."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def find_entry(image_map: ImageMap, reference: str) -> ImageEntry | None:
    candidates = {reference, normalize(reference)}
    repos = {repository(c) for c in candidates}
    for entry in image_map.entries:
        targets = candidates if (":" in entry.match or "@" in entry.match) else candidates | repos
        if any(fnmatch.fnmatchcase(t, entry.match) for t in targets):
            return entry
    return None


def plan_launch(
    image_map: ImageMap,
    image: str,
    command: Sequence[str] | None,
    args: Sequence[str] | None,
) -> LaunchPlan:
    """Docker's ENTRYPOINT/CMD rules applied to the container's command/args."""
    entry = find_entry(image_map, image)
    env: tuple[tuple[str, str], ...] = entry.env if entry else ()
    working_dir = entry.working_dir if entry else None
    if command:
        argv = tuple(command) + tuple(args or ())
        return LaunchPlan(argv, env, working_dir)
    if entry is None or not (entry.entrypoint or entry.cmd or args):
        where = image_map.source or f"none; pass --image-map PATH or set {ENV_VAR}"
        raise UnmappedImage(
            f'image "{image}" has no command on the process node (images carry no '
            f"filesystem): give the container a `command`, or map the image to a local "
            f"command in the image map (map file: {where})"
        )
    argv = entry.entrypoint + (tuple(args) if args else entry.cmd)
    if not argv:
        raise UnmappedImage(f'image "{image}": the image map gives an empty command')
    return LaunchPlan(argv, env, working_dir)
