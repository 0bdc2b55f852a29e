"""The code package on this node: fetched once, verified, unpacked atomically.

Owns: the per-node code cache (``$KFLOW_CODE_CACHE/<sha>/``, default
``~/.cache/kflow/code/<sha>/``) and importing the flow class from a code
directory. A package is unpacked into a private temporary directory next to
its final place and renamed into place, so a directory named after a sha
always holds that package complete: concurrent tasks on one node either
find it or race to create it, and the loser throws its copy away. The
digest is checked (`kflow.packaging.extract_package`) before anything is
unpacked; user code never runs from an unverified package.

The flow file is run as a module named after the file (``train_flow``),
never as ``__main__`` (so ``if __name__ == "__main__": TrainFlow()`` does
not fire), with the code directory first on ``sys.path`` so the flow can
import its sibling modules and artifacts pickle classes by that name.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from kflow.runner.exitcodes import CodePackageError

if TYPE_CHECKING:
    from kflow.flowspec import FlowSpec

__all__ = ["cache_root", "cached_package", "import_flow"]

CACHE_ENV = "KFLOW_CODE_CACHE"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def cache_root(environ: Mapping[str, str]) -> Path:
    """``$KFLOW_CODE_CACHE`` or ``~/.cache/kflow/code``."""
    explicit = environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    return Path(environ.get("HOME") or Path.home()) / ".cache" / "kflow" / "code"


def cached_package(sha256: str, root: Path, fetch: Callable[[], bytes]) -> tuple[Path, bool]:
    """The directory holding package `sha256`, unpacking it first if needed.

    `fetch` returns the package's bytes; it is called only on a cache miss.
    Returns ``(directory, hit)``. Raises `CodePackageError` when the bytes do
    not match the digest or are not a kflow package.
    """
    from kflow.packaging import extract_package

    if not re.fullmatch(r"[a-f0-9]{64}", sha256):
        raise CodePackageError(f"--code-sha256 {sha256!r} is not a sha256 hex digest")
    final = root / sha256
    if final.is_dir():
        return final, True
    data = fetch()
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=root))
    try:
        try:
            extract_package(data, sha256, scratch / "pkg")
        except ValueError as exc:
            raise CodePackageError(str(exc)) from None
        except Exception as exc:  # a truncated or garbled archive
            raise CodePackageError(f"code package {sha256[:12]} cannot be unpacked: "
                                   f"{type(exc).__name__}: {exc}") from None
        os.chmod(scratch / "pkg", 0o755)
        try:
            os.rename(scratch / "pkg", final)
        except OSError:
            if not final.is_dir():  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final, False


def _module_name(flow_file: Path) -> str:
    stem = flow_file.stem
    if _IDENTIFIER.match(stem) and stem not in sys.modules:
        return stem
    return "kflow_flow_" + re.sub(r"\W", "_", stem)


def import_flow(code_dir: Path, flow_file: str, flow_name: str) -> type[FlowSpec]:
    """Import `flow_file` (relative to `code_dir`) and return its class `flow_name`.

    Raises `CodePackageError` when the file is missing, fails to import, or
    does not define a FlowSpec subclass of that name.
    """
    from kflow.flowspec import FlowSpec

    path = Path(flow_file) if Path(flow_file).is_absolute() else code_dir / flow_file
    if not path.is_file():
        raise CodePackageError(f"flow file {flow_file} is not in the code package ({code_dir})")
    directory = str(path.parent.resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CodePackageError(f"{path} cannot be imported as a Python module")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if not isinstance(exc, Exception):  # SIGTERM (TaskTerminated), Ctrl-C, exit
            raise
        raise CodePackageError(
            f"importing the flow file {flow_file} failed: {type(exc).__name__}: {exc}"
        ) from exc
    found = getattr(module, flow_name, None)
    if not (inspect.isclass(found) and issubclass(found, FlowSpec)):
        defined = sorted(n for n, v in vars(module).items()
                         if inspect.isclass(v) and issubclass(v, FlowSpec) and v is not FlowSpec)
        raise CodePackageError(
            f"{flow_file} defines no flow class {flow_name}"
            + (f" (it defines: {', '.join(defined)})" if defined else "")
        )
    return found
