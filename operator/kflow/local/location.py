"""Where local runs live: the store directory, the namespace and new run ids.

Owns the rules that both the writer (`python flow.py run --local`) and the reader
(the client API, `kflow.client.Source.from_config`) follow, so they meet:

* **store directory**: ``$KFLOW_STORE_DIR`` when set; else the nearest
  ``.kflow/store`` in the current directory or one of its parents (Metaflow's rule
  for its ``.metaflow`` folder); else ``./.kflow/store``, created by the first run.
  The flow's code package never contains it (`kflow.packaging` skips hidden
  folders).
* **namespace** (the store keys' first segment): the one given (``--namespace``),
  else ``$KFLOW_NAMESPACE``, else ``local``.
* **run id**: ``local-<UTC yyyymmddHHMMSS>-<6 hex>``: sorts by start, unique without
  any coordination, a valid store key segment.

Pure apart from `find_store_dir`, which looks at the file system (read only).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "LOCAL_NAMESPACE",
    "STORE_DIR_ENV",
    "STORE_FOLDER",
    "find_store_dir",
    "local_namespace",
    "new_run_id",
    "store_dir",
]

STORE_DIR_ENV = "KFLOW_STORE_DIR"
STORE_FOLDER = Path(".kflow") / "store"
LOCAL_NAMESPACE = "local"
_RUN_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,252}$")


def find_store_dir(start: Path, is_dir: Callable[[Path], bool] = Path.is_dir) -> Path | None:
    """The nearest ``.kflow/store`` in `start` or one of its parents, None if none."""
    for folder in (start, *start.parents):
        candidate = folder / STORE_FOLDER
        if is_dir(candidate):
            return candidate
    return None


def store_dir(environ: Mapping[str, str] | None = None, cwd: Path | None = None,
              is_dir: Callable[[Path], bool] = Path.is_dir) -> Path:
    """The local store's directory (see the module docstring); not created here."""
    env = os.environ if environ is None else environ
    explicit = env.get(STORE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    here = (cwd or Path.cwd()).absolute()
    return find_store_dir(here, is_dir) or here / STORE_FOLDER


def local_namespace(explicit: str | None = None,
                    environ: Mapping[str, str] | None = None) -> str:
    """The namespace of local runs: `explicit`, else ``$KFLOW_NAMESPACE``, else ``local``."""
    env = os.environ if environ is None else environ
    return explicit or env.get("KFLOW_NAMESPACE") or LOCAL_NAMESPACE


def new_run_id(now: datetime | None = None, token: str | None = None) -> str:
    """A new local run id: ``local-20261129101500-3fa2c1``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"local-{moment:%Y%m%d%H%M%S}-{token or secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    """`run_id` if it can name a run in the store, else ValueError saying what to use."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} cannot name a run: use letters, digits, '_', "
                         "'-' and '.', starting with a letter, digit or '_'")
    return run_id
