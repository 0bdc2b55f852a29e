"""kflow's datastore: content-addressed artifacts, task records and logs in an object store.

Layers (each module says what it owns)::

    Datastore (datastore.py)            the facade the runner and client use
    ├── ContentAddressedStore (cas.py)  save/load values by sha256, dedup, parallel
    │   └── encoding.py                 value <-> stored bytes (pure)
    ├── LogSink / read_log (logs.py)    segmented logs written while a task runs
    ├── records.py                      ArtifactRef, ArtifactIndex, TaskMetadata (JSON)
    ├── layout.py                       every key (pure; the one owner of the key scheme)
    └── ObjectStore (backend.py)        bytes in/out: LocalObjectStore (local.py),
                                        S3ObjectStore (s3.py, the only minio user)

Typical use (the runner)::

    store = store_from_env(os.environ)
    key = TaskKey("default", "TrainFlow", "train-1a2b3c4d", "fit", "3").attempt(0)
    writer = store.attempt(key)
    writer.begin(TaskMetadata.collect(0, code_sha, time.time()))
    with writer.log_sink("stdout") as out:
        ...                                # out.write(b"...") while the step runs
    index = writer.save_artifacts({"model": model, "scores": scores})
    writer.finish(meta.finished(time.time(), 0))   # meta.json, artifacts.json, then DONE

    # reading (next step, client API)
    attempt = store.latest_done_attempt(key.task)  # only attempts with DONE count
    index = store.read_index(key.task.attempt(attempt))
    model = store.load(index["model"])

Errors: see `kflow.store.errors` (`StoreUnavailable` = infrastructure failure).
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from kflow.store.backend import Buffer, ObjectStore
from kflow.store.config import object_store_from_env, store_from_env
from kflow.store.datastore import AttemptWriter, Datastore
from kflow.store.encoding import COMPRESS_MIN_RATIO, Encoded, decode, encode
from kflow.store.errors import (
    CorruptArtifact,
    ObjectNotFound,
    StoreError,
    StoreNotConfigured,
    StoreUnavailable,
    UnpicklableArtifact,
)
from kflow.store.layout import LOG_STREAMS, AttemptKey, StoreLayout, TaskKey
from kflow.store.local import LocalObjectStore
from kflow.store.logs import LogSink, read_log
from kflow.store.records import ArtifactIndex, ArtifactRef, ExceptionInfo, TaskMetadata
from kflow.store.retry import RetryPolicy

if _TYPE_CHECKING:
    from kflow.store.s3 import S3ObjectStore


def __getattr__(name: str) -> _Any:
    # S3ObjectStore pulls in minio (~0.2 s); a task on the local backend never needs it.
    if name == "S3ObjectStore":
        from kflow.store.s3 import S3ObjectStore

        return S3ObjectStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "S3ObjectStore"})

__all__ = [
    "COMPRESS_MIN_RATIO",
    "LOG_STREAMS",
    "ArtifactIndex",
    "ArtifactRef",
    "AttemptKey",
    "AttemptWriter",
    "Buffer",
    "CorruptArtifact",
    "Datastore",
    "Encoded",
    "ExceptionInfo",
    "LocalObjectStore",
    "LogSink",
    "ObjectNotFound",
    "ObjectStore",
    "RetryPolicy",
    "S3ObjectStore",
    "StoreError",
    "StoreLayout",
    "StoreNotConfigured",
    "StoreUnavailable",
    "TaskKey",
    "TaskMetadata",
    "UnpicklableArtifact",
    "decode",
    "encode",
    "object_store_from_env",
    "read_log",
    "store_from_env",
]
