"""Building the datastore from the environment (the runner's pods, the CLI).

Owns: the environment variables that configure the store::

    KFLOW_STORE_DIR         a directory: use the local backend (wins over S3)
    KFLOW_S3_CREDENTIALS    a JSON file {endpoint, accessKey, secretKey, bucket, region}
                            (the embedded cluster's s3-credentials.json)
    KFLOW_S3_ENDPOINT       http(s)://host:port       (override the file's values)
    KFLOW_S3_ACCESS_KEY, KFLOW_S3_SECRET_KEY
    KFLOW_S3_BUCKET         default "kflow"
    KFLOW_S3_REGION         default "us-east-1"
    KFLOW_S3_PREFIX         key prefix inside the bucket / directory, default ""
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kflow.store.backend import ObjectStore
from kflow.store.datastore import Datastore
from kflow.store.errors import StoreNotConfigured
from kflow.store.layout import StoreLayout
from kflow.store.local import LocalObjectStore
from kflow.store.retry import RetryPolicy

if TYPE_CHECKING:  # minio costs ~0.2 s to import: only S3 users pay it
    from kflow.store.s3 import S3Config

__all__ = ["ENV_VARS", "object_store_from_env", "s3_config_from_env", "store_from_env"]

ENV_VARS: tuple[str, ...] = (
    "KFLOW_STORE_DIR", "KFLOW_S3_CREDENTIALS", "KFLOW_S3_ENDPOINT", "KFLOW_S3_ACCESS_KEY",
    "KFLOW_S3_SECRET_KEY", "KFLOW_S3_BUCKET", "KFLOW_S3_REGION", "KFLOW_S3_PREFIX",
)
_FILE_FIELDS = {"endpoint": "endpoint", "accessKey": "access_key", "secretKey": "secret_key",
                "bucket": "bucket", "region": "region"}


def _from_file(path: str) -> dict[str, str]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreNotConfigured(f"KFLOW_S3_CREDENTIALS={path}: cannot read it: {exc}") from exc
    if not isinstance(doc, dict):
        raise StoreNotConfigured(f"KFLOW_S3_CREDENTIALS={path}: expected a JSON object")
    return {ours: str(doc[theirs]) for theirs, ours in _FILE_FIELDS.items() if doc.get(theirs)}


def s3_config_from_env(environ: Mapping[str, str]) -> S3Config | None:
    """The S3 settings in `environ`, None if there are none; error if incomplete."""
    from kflow.store.s3 import S3Config

    values: dict[str, str] = {}
    if environ.get("KFLOW_S3_CREDENTIALS"):
        values.update(_from_file(environ["KFLOW_S3_CREDENTIALS"]))
    for var, field in (("KFLOW_S3_ENDPOINT", "endpoint"), ("KFLOW_S3_ACCESS_KEY", "access_key"),
                       ("KFLOW_S3_SECRET_KEY", "secret_key"), ("KFLOW_S3_BUCKET", "bucket"),
                       ("KFLOW_S3_REGION", "region")):
        if environ.get(var):
            values[field] = environ[var]
    if not values:
        return None
    missing = [var for var, field in (("KFLOW_S3_ENDPOINT", "endpoint"),
                                      ("KFLOW_S3_ACCESS_KEY", "access_key"),
                                      ("KFLOW_S3_SECRET_KEY", "secret_key"))
               if field not in values]
    if missing:
        raise StoreNotConfigured(
            f"incomplete S3 configuration: {', '.join(missing)} not set",
            hint="Set them, or point KFLOW_S3_CREDENTIALS at an s3-credentials.json.")
    return S3Config(**values)


def object_store_from_env(environ: Mapping[str, str] | None = None, *,
                          retry: RetryPolicy | None = None) -> ObjectStore:
    """The backend `environ` (default os.environ) configures."""
    env = os.environ if environ is None else environ
    if env.get("KFLOW_STORE_DIR"):
        return LocalObjectStore(env["KFLOW_STORE_DIR"])
    config = s3_config_from_env(env)
    if config is None:
        raise StoreNotConfigured(
            "no datastore configured",
            hint="Set KFLOW_STORE_DIR to a directory, or KFLOW_S3_CREDENTIALS to an "
            "s3-credentials.json, or KFLOW_S3_ENDPOINT, KFLOW_S3_ACCESS_KEY and "
            "KFLOW_S3_SECRET_KEY (optionally KFLOW_S3_BUCKET, KFLOW_S3_REGION, "
            "KFLOW_S3_PREFIX).")
    from kflow.store.s3 import S3ObjectStore

    return S3ObjectStore(config, retry=retry)


def store_from_env(environ: Mapping[str, str] | None = None, *,
                   retry: RetryPolicy | None = None) -> Datastore:
    """The `Datastore` `environ` (default os.environ) configures, with its prefix."""
    env = os.environ if environ is None else environ
    layout = StoreLayout.from_prefix(env.get("KFLOW_S3_PREFIX", ""))
    return Datastore(object_store_from_env(env, retry=retry), layout)
