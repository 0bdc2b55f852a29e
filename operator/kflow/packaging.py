"""The code package: a reproducible tar.gz of a flow's source (pure apart from file reads).

Owns: choosing the files of a flow's package (the flow file, the `*.py` files
beside it, `--package-include` extras), writing them as a tar.gz whose bytes
(and so whose sha256) depend only on the files' paths, contents and owner-exec
bits, the `.kflow/manifest.json` inside it, the object-store key of a package,
and checking and unpacking a package (the runner's side).

Reproducible means: entries sorted by path, no directory entries, mtime fixed at
1575360000 (Metaflow's), uid/gid 0 with empty user and group names, modes
normalised to 0o644 or 0o755, and a gzip header with mtime 0 and no file name.
The same code gives the same sha256 whatever the file order on disk, the mtimes,
the owner or the umask, so a redeploy of unchanged code reuses the stored package.

Does not upload (the deploy command does); the object-store key comes from
`kflow.store.layout`, the one owner of keys. Problems the caller should show are
returned in `CodePackage.warnings`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MTIME = 1575360000                   # fixed entry mtime (Metaflow's), 2019-12-03
MANIFEST_PATH = ".kflow/manifest.json"
MANIFEST_VERSION = 1
WARN_SIZE = 50 * 1024 * 1024         # warn above this many package bytes
MAX_FILE_SIZE = 10 * 1024 * 1024     # skip (and warn about) larger files found by default
# Directories never searched by default: VCS metadata, caches, dependency trees.
SKIP_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".tox",
                       ".nox", "node_modules", ".mypy_cache", ".pytest_cache",
                       ".ruff_cache", "site-packages", ".ipynb_checkpoints"})
@dataclass(frozen=True)
class CodePackage:
    """A built package: its bytes and what is in them.

    `files` are the user files (sorted '/'-separated paths relative to the flow's
    directory), without the manifest; `flow_file` is one of them.
    """

    data: bytes
    sha256: str
    flow_file: str
    files: tuple[str, ...]
    size: int
    warnings: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The object-store key of this package (`code/<sha256>.tar.gz`)."""
        return package_key(self.sha256)


def package_key(sha256: str) -> str:
    """The object-store key of the package with this digest: `code/<sha256>.tar.gz`
    (without a store prefix). The key scheme is owned by `kflow.store.layout`."""
    from kflow.store.layout import StoreLayout

    return StoreLayout().code_package(sha256)


def build_package(flow_file: Path, include: Sequence[str] = (), *,
                  warn_size: int = WARN_SIZE,
                  max_file_size: int = MAX_FILE_SIZE) -> CodePackage:
    """Package `flow_file`, the `*.py` files under its directory and `include` matches.

    `include` holds glob patterns relative to the flow file's directory (`data/*.csv`,
    `configs/**/*.yaml`, `requirements.txt`); a pattern naming a directory takes the
    files under it. Files found by default (not by a pattern) larger than
    `max_file_size` are left out with a warning; a package larger than `warn_size`
    bytes is built with a warning. Raises FileNotFoundError when the flow file is
    missing and ValueError for a pattern that leaves the flow's directory.
    """
    flow_file = Path(flow_file)
    if not flow_file.is_file():
        raise FileNotFoundError(f"flow file not found: {flow_file}")
    flow_path = flow_file.absolute()
    root = flow_path.parent
    warnings: list[str] = []
    chosen: dict[str, Path] = {flow_path.name: flow_path}

    for path in _python_files(root):
        rel = path.relative_to(root).as_posix()
        size = path.stat().st_size
        if rel not in chosen and size > max_file_size:
            warnings.append(
                f"left out {rel} ({_mb(size)}): Python files over {_mb(max_file_size)} are "
                "usually generated data; add it with --package-include if the flow needs it")
            continue
        chosen[rel] = path
    for pattern in include:
        matched = list(_included_files(root, pattern))
        if not matched:
            warnings.append(f"--package-include {pattern!r} matched no file under {root}")
        for path in matched:
            chosen[path.relative_to(root).as_posix()] = path

    files = tuple(sorted(chosen))
    flow_rel = flow_path.name
    data = _tar_gz(files, chosen, flow_rel)
    if len(data) > warn_size:
        largest = sorted(files, key=lambda rel: chosen[rel].stat().st_size, reverse=True)[:3]
        listed = ", ".join(f"{rel} ({_mb(chosen[rel].stat().st_size)})" for rel in largest)
        warnings.append(
            f"the code package is {_mb(len(data))} (over {_mb(warn_size)}) and every step "
            f"pod downloads it; largest files: {listed}. Keep data out of the flow's "
            "directory (load it from S3 in a step) or narrow --package-include")
    return CodePackage(data=data, sha256=hashlib.sha256(data).hexdigest(), flow_file=flow_rel,
                       files=files, size=len(data), warnings=tuple(warnings))


def read_manifest(data: bytes) -> dict[str, object]:
    """The `.kflow/manifest.json` of a package: `version`, `flowFile`, `files`."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile(MANIFEST_PATH)
        if member is None:
            raise ValueError(f"{MANIFEST_PATH} is not a file in the package")
        manifest: dict[str, object] = json.loads(member.read())
    return manifest


def extract_package(data: bytes, expected_sha256: str, dest: Path) -> Path:
    """Check the package's digest, unpack it into `dest`; return the flow file's path.

    Raises ValueError when the digest differs (a corrupt or substituted package: user
    code is never unpacked from it) or the package is not a kflow code package.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ValueError(f"code package digest mismatch: expected {expected_sha256}, got "
                         f"{actual}; redeploy the flow to upload its package again")
    manifest = read_manifest(data)
    flow_file = manifest.get("flowFile")
    if not isinstance(flow_file, str):
        raise ValueError(f"{MANIFEST_PATH} has no flowFile")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest / flow_file


# --- choosing files ------------------------------------------------------------------


def _is_virtualenv(directory: Path) -> bool:
    return (directory / "pyvenv.cfg").is_file() or (directory / "conda-meta").is_dir()


def _walk(directory: Path, allow_hidden: frozenset[str] = frozenset()) -> Iterator[Path]:
    """Regular files under `directory` (symlinks to files followed, to dirs not),
    skipping SKIP_DIRS, hidden directories (but those in `allow_hidden`) and
    virtualenvs."""
    for current, dirnames, filenames in os.walk(directory):
        here = Path(current)
        dirnames[:] = sorted(
            name for name in dirnames
            if name not in SKIP_DIRS
            and (not name.startswith(".") or name in allow_hidden)
            and not _is_virtualenv(here / name))
        for name in sorted(filenames):
            path = here / name
            if path.is_file():
                yield path


def _python_files(root: Path) -> Iterator[Path]:
    for path in _walk(root):
        if path.suffix == ".py" and not path.name.startswith("."):
            yield path


def _included_files(root: Path, pattern: str) -> Iterator[Path]:
    parts = PurePosixPath(pattern).parts
    if not pattern or PurePosixPath(pattern).is_absolute() or ".." in parts:
        raise ValueError(f"--package-include {pattern!r}: give a glob relative to the flow's "
                         f"directory {root}, without '..'")
    # A hidden directory is searched only when the pattern names it.
    named_hidden = frozenset(part for part in parts if part.startswith(".") and "*" not in part)
    for match in sorted(root.glob(pattern)):
        rel_dirs = match.relative_to(root).parts[:-1] if match.is_file() else \
            match.relative_to(root).parts
        if any(part in SKIP_DIRS or (part.startswith(".") and part not in named_hidden)
               for part in rel_dirs):
            continue
        if match.is_file():
            yield match
        elif match.is_dir() and not _is_virtualenv(match):
            yield from _walk(match, named_hidden)


# --- writing the archive -------------------------------------------------------------


def _entry(name: str, size: int, executable: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MTIME
    info.mode = 0o755 if executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _tar_gz(files: Sequence[str], paths: dict[str, Path], flow_file: str) -> bytes:
    manifest = json.dumps({"version": MANIFEST_VERSION, "flowFile": flow_file,
                           "files": list(files)}, indent=1, sort_keys=True).encode()
    entries: list[tuple[str, bytes, bool]] = [(MANIFEST_PATH, manifest, False)]
    for rel in files:
        path = paths[rel]
        entries.append((rel, path.read_bytes(), bool(path.stat().st_mode & stat.S_IXUSR)))
    entries.sort(key=lambda entry: entry[0])

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, executable in entries:
            tar.addfile(_entry(name, len(content), executable), io.BytesIO(content))
    packed = io.BytesIO()
    # No fileobj name and mtime 0: the gzip header holds neither a file name nor a time.
    with gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
