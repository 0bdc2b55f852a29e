"""store_from_env: local dir, S3 variables, credentials file, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kflow.store import (
    LocalObjectStore,
    S3ObjectStore,
    StoreError,
    StoreNotConfigured,
    store_from_env,
)


def test_local_dir_wins(tmp_path: Path) -> None:
    store = store_from_env({"KFLOW_STORE_DIR": str(tmp_path), "KFLOW_S3_ENDPOINT": "http://x:1",
                            "KFLOW_S3_PREFIX": "p/q"})
    assert isinstance(store.objects, LocalObjectStore)
    assert store.layout.prefix == "p/q/"


def test_s3_from_variables() -> None:
    store = store_from_env({"KFLOW_S3_ENDPOINT": "http://127.0.0.1:9000",
                            "KFLOW_S3_ACCESS_KEY": "AK", "KFLOW_S3_SECRET_KEY": "SK"})
    assert isinstance(store.objects, S3ObjectStore)
    assert store.objects.config.bucket == "kflow"
    assert store.objects.config.region == "us-east-1"
    assert store.layout.prefix == ""


def test_s3_from_credentials_file_with_override(tmp_path: Path) -> None:
    path = tmp_path / "s3-credentials.json"
    path.write_text(json.dumps({"endpoint": "http://127.0.0.1:8333", "accessKey": "AK",
                                "secretKey": "SK", "bucket": "b1", "region": "eu-1"}))
    store = store_from_env({"KFLOW_S3_CREDENTIALS": str(path), "KFLOW_S3_BUCKET": "b2"})
    assert isinstance(store.objects, S3ObjectStore)
    config = store.objects.config
    assert (config.endpoint, config.access_key, config.bucket, config.region) == \
        ("http://127.0.0.1:8333", "AK", "b2", "eu-1")


def test_nothing_configured_names_the_variables() -> None:
    with pytest.raises(StoreNotConfigured) as info:
        store_from_env({})
    message = str(info.value)
    for var in ("KFLOW_STORE_DIR", "KFLOW_S3_CREDENTIALS", "KFLOW_S3_ENDPOINT",
                "KFLOW_S3_ACCESS_KEY", "KFLOW_S3_SECRET_KEY"):
        assert var in message


def test_incomplete_s3_config() -> None:
    with pytest.raises(StoreNotConfigured, match="KFLOW_S3_SECRET_KEY"):
        store_from_env({"KFLOW_S3_ENDPOINT": "http://h:1", "KFLOW_S3_ACCESS_KEY": "a"})


def test_bad_credentials_file(tmp_path: Path) -> None:
    with pytest.raises(StoreNotConfigured, match="KFLOW_S3_CREDENTIALS"):
        store_from_env({"KFLOW_S3_CREDENTIALS": str(tmp_path / "missing.json")})


def test_bad_endpoint() -> None:
    with pytest.raises(StoreError, match="http"):
        store_from_env({"KFLOW_S3_ENDPOINT": "ftp://h", "KFLOW_S3_ACCESS_KEY": "a",
                        "KFLOW_S3_SECRET_KEY": "b"})
