"""Finding, or building once, the binaries of the embedded control plane.

Owns: where `etcd`, `kube-apiserver`, `kube-controller-manager`,
`kube-scheduler`, `kubectl` and `helm` (`helm()`, for the chart's tests; its own
build script `build-helm.sh`) come from. In order:

1. `KFLOW_BIN_DIR` (a folder holding the binaries);
2. `PATH` (the control-plane binaries only: `kubectl` on PATH may be any
   version, so the matching one from the cache is preferred when it exists);
3. the build cache `~/.cache/kflow/bin/<component>-<version>-<go>-<script hash>/`
   (`KFLOW_CACHE_DIR` moves `~/.cache/kflow`), filled on first use by
   `build-binaries.sh` from the Go module proxy with the wrapper-module
   recipe. Nothing prebuilt is downloaded or committed.

A build takes an exclusive `flock` on `<cache dir>.lock`, so two `kflow`
processes never build the same thing at once (the second waits, then finds
the first one's result). A build is complete only when its `.complete`
stamp exists; a half-built folder is rebuilt. Progress lines go to the
given stream; the full log stays in `~/.cache/kflow/logs/`, and a failure
names it and shows its tail. If the module proxy refuses the pinned
Kubernetes release, the neighbouring releases are tried in turn.

Measured on 2 cores / 24 GiB (see docs/local-cluster.md): see that file for the
cold build time and binary sizes.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

K8S_VERSION = "v1.36.3"
# Tried in this order when the proxy refuses a module K8S_VERSION needs.
K8S_FALLBACK_VERSIONS = ("v1.37.2", "v1.36.1", "v1.35.4")
ETCD_VERSION = "v3.6.16"
HELM_VERSION = "v3.22.0"

K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
ETCD_BINARIES = ("etcd",)
# Binaries taken from PATH when present there (kubectl only from the cache or KFLOW_BIN_DIR
# by preference: the one on PATH is often an older client).
_FROM_PATH = frozenset({"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"})

BUILD_SCRIPT = Path(__file__).with_name("build-binaries.sh")
# helm has a script of its own: changing it leaves the Kubernetes build's cache key alone.
HELM_SCRIPT = Path(__file__).with_name("build-helm.sh")


def _script(component: str) -> Path:
    return HELM_SCRIPT if component == "helm" else BUILD_SCRIPT


class BuildError(RuntimeError):
    """A component could not be built; the message names the log and shows its tail."""


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every binary the embedded cluster runs."""

    etcd: str
    kube_apiserver: str
    kube_controller_manager: str
    kube_scheduler: str
    kubectl: str
    k8s_version: str
    etcd_version: str


def cache_root() -> Path:
    """`KFLOW_CACHE_DIR`, else `$XDG_CACHE_HOME/kflow`, else `~/.cache/kflow`."""
    if env := os.environ.get("KFLOW_CACHE_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kflow"


def go_version() -> str:
    """The local Go toolchain's version (`go1.26.8`); part of the cache key."""
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "the Go toolchain is needed to build the control plane once, and `go` is not on "
            "PATH: install Go 1.26, or set KFLOW_BIN_DIR to a folder holding etcd, "
            "kube-apiserver, kube-controller-manager, kube-scheduler and kubectl"
        )
    out = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, check=True,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    )
    return out.stdout.strip()


def cache_key(component: str, version: str, go: str) -> str:
    """Folder name of one build: changes with the version, Go and the build script."""
    script = hashlib.sha256(_script(component).read_bytes()).hexdigest()[:8]
    return f"{component}-{version}-{go}-{script}"


def _find_outside_cache(name: str) -> str | None:
    if bin_dir := os.environ.get("KFLOW_BIN_DIR"):
        candidate = Path(bin_dir).expanduser() / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    if name in _FROM_PATH:
        return shutil.which(name)
    return None


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run_build(
    component: str, version: str, out_dir: Path, log_path: Path, progress: TextIO
) -> bool:
    """Run the build script once; True on success. Streams '==>' lines to `progress`."""
    root = cache_root()
    env = {
        **os.environ,
        "GOMODCACHE": str(root / "go" / "mod"),
        "GOCACHE": str(root / "go" / "build"),
        "GOTOOLCHAIN": "local",
    }
    started = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["bash", str(_script(component)), component, version, str(out_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if line.startswith("==>"):
                elapsed = time.monotonic() - started
                print(f"  [{elapsed:6.0f}s] {component} {version}: {line[3:].strip()}",
                      file=progress, flush=True)
        return proc.wait() == 0


def ensure_built(
    component: str, versions: Sequence[str], names: Sequence[str], progress: TextIO,
    build: bool = True,
) -> tuple[Path, str]:
    """The cache folder holding `names` for the first of `versions` that builds.

    Builds under an exclusive lock when absent (unless `build` is false). Raises
    BuildError naming the log of every failed attempt.
    """
    root = cache_root()
    go = go_version()
    failures: list[str] = []
    for version in versions:
        out_dir = root / "bin" / cache_key(component, version, go)
        stamp = out_dir / ".complete"
        if stamp.exists():
            return out_dir, version
        if not build:
            continue
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{out_dir}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"waiting for another kflow process building {component} {version} ...",
                      file=progress, flush=True)
                fcntl.flock(lock, fcntl.LOCK_EX)
            if stamp.exists():  # built by the process we waited for
                return out_dir, version
            shutil.rmtree(out_dir, ignore_errors=True)
            logs = root / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            log_path = logs / f"build-{component}-{version}-{time.strftime('%Y%m%d-%H%M%S')}.log"
            print(f"building {component} {version} from its Go modules (once; cached in "
                  f"{out_dir}); log: {log_path}", file=progress, flush=True)
            started = time.monotonic()
            if _run_build(component, version, out_dir, log_path, progress) and all(
                (out_dir / n).is_file() for n in names
            ):
                stamp.write_text(f"built in {time.monotonic() - started:.0f}s\n")
                print(f"built {component} {version} in {time.monotonic() - started:.0f}s",
                      file=progress, flush=True)
                return out_dir, version
            failures.append(f"{component} {version}: see {log_path}\n{_tail(log_path)}")
            print(f"building {component} {version} failed (log: {log_path})",
                  file=progress, flush=True)
    if not build:
        raise BuildError(f"{component} is not built yet and building is disabled: run "
                         f"`kflow cluster build` (or set KFLOW_BIN_DIR)")
    raise BuildError("could not build " + component + ":\n\n" + "\n\n".join(failures))


def resolve(progress: TextIO = sys.stderr, build: bool = True) -> Binaries:
    """Every binary's path, building the missing ones when `build` is true."""
    found = {name: _find_outside_cache(name) for name in (*ETCD_BINARIES, *K8S_BINARIES)}
    k8s_version = etcd_version = "external"

    def from_cache(component: str, versions: Sequence[str], names: Sequence[str]) -> str:
        out_dir, version = ensure_built(component, versions, names, progress, build)
        for name in names:
            found[name] = found[name] or str(out_dir / name)
        return version

    want_k8s = [n for n in K8S_BINARIES if found[n] is None]
    if want_k8s == ["kubectl"] and shutil.which("kubectl"):
        # The control plane came from outside the cache: don't build it all for a client.
        found["kubectl"] = shutil.which("kubectl")
    elif want_k8s:
        k8s_version = from_cache("k8s", (K8S_VERSION, *K8S_FALLBACK_VERSIONS), K8S_BINARIES)
    if found["etcd"] is None:
        etcd_version = from_cache("etcd", (ETCD_VERSION,), ETCD_BINARIES)
    paths = {n: p for n, p in found.items() if p is not None}
    return Binaries(
        etcd=paths["etcd"],
        kube_apiserver=paths["kube-apiserver"],
        kube_controller_manager=paths["kube-controller-manager"],
        kube_scheduler=paths["kube-scheduler"],
        kubectl=paths["kubectl"],
        k8s_version=k8s_version,
        etcd_version=etcd_version,
    )


def helm(progress: TextIO = sys.stderr, build: bool = True) -> str:
    """The path of `helm` (`HELM_VERSION`): from `KFLOW_BIN_DIR`, else the build cache,
    built there once from its Go module (~6 minutes cold on 2 cores)."""
    found = _find_outside_cache("helm")
    if found:
        return found
    out_dir, _ = ensure_built("helm", (HELM_VERSION,), ("helm",), progress, build)
    return str(out_dir / "helm")
