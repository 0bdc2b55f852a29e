"""The client API's errors when its sources cannot be read: one sentence saying what
failed and what to check (no traceback from minio or urllib3)."""

from __future__ import annotations

import socket

import pytest

import kflow.client as client
from kflow.store import Datastore, RetryPolicy
from kflow.store.s3 import S3Config, S3ObjectStore


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_object_store_is_named_with_what_to_check() -> None:
    objects = S3ObjectStore(S3Config(f"http://127.0.0.1:{_closed_port()}", "k", "s"),
                            retry=RetryPolicy(attempts=1, deadline=1.0), connect_timeout=1)
    client.set_source(client.Source(Datastore(objects), "ml", None))
    try:
        with pytest.raises(client.ClientError) as raised:
            client.Flow("TrainFlow")
    finally:
        client.set_source(None)
    text = str(raised.value)
    assert "listing the runs of TrainFlow from the object store http://127.0.0.1:" in text
    assert "Is it up, and are the credentials right?" in text
    assert "kflow configure --show" in text


def test_no_object_store_configured_says_how_to_configure_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kflow.config import ConfigError

    monkeypatch.setenv("KFLOW_CONFIG", "")
    for name in ("KFLOW_S3_ENDPOINT", "KFLOW_S3_CREDENTIALS", "KFLOW_S3_ACCESS_KEY",
                 "KFLOW_S3_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    client.set_source(None)
    with pytest.raises(ConfigError, match="kflow configure"):
        client.Flow("TrainFlow")
