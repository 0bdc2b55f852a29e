"""Fixtures for integration tests against a real S3 server (SeaweedFS `weed mini`).

`s3_server` (session-scoped) starts one server on free loopback ports in a
temp dir, exactly as the cluster supervisor does (`kflow.cluster.s3` for the
argv, env, config and probe; `kflow.cluster.processes` to run and stop it),
creates the bucket, yields an `S3Server` (its `creds` are an
`S3Credentials`; `env()` gives the KFLOW_S3_* variables a runner would get)
and stops it at the end of the session. Tests sharing it should write under
their own prefix or run id. `start_s3_server(dir)` starts a private one, for
tests that stop or break it; stop it with `.stop()`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kflow.cluster import processes, s3

READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 20.0


@dataclass
class S3Server:
    """A running `weed mini` and how to reach it."""

    creds: s3.S3Credentials
    record: processes.ProcessRecord
    state_dir: Path
    ports: dict[str, int]
    log: Path

    def env(self, prefix: str = "") -> dict[str, str]:
        """The variables `kflow.store.store_from_env` reads, for this server."""
        return {
            "KFLOW_S3_ENDPOINT": self.creds.endpoint,
            "KFLOW_S3_ACCESS_KEY": self.creds.access_key,
            "KFLOW_S3_SECRET_KEY": self.creds.secret_key,
            "KFLOW_S3_BUCKET": self.creds.bucket,
            "KFLOW_S3_REGION": self.creds.region,
            "KFLOW_S3_PREFIX": prefix,
        }

    def running(self) -> bool:
        return processes.alive(self.record)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL after a grace period."""
        processes.stop(self.record, grace=STOP_GRACE_S)
        s3.remove_sockets(self.ports)


def start_s3_server(state_dir: Path) -> S3Server:
    """Start a server in `state_dir`, wait until it answers, create the bucket."""
    ports = processes.free_ports(s3.PORT_NAMES)
    creds = s3.new_credentials(s3.endpoint_for(ports["s3"]))
    data_dir = state_dir / "data"
    s3.prepare_data_dir(data_dir)
    config = s3.write_config(state_dir, creds)
    log = state_dir / "weed.log"
    record = processes.start(s3.server_argv(s3.find_weed(), data_dir, config, ports), log,
                             env=s3.server_env(os.environ, state_dir), cwd=data_dir)
    server = S3Server(creds, record, state_dir, ports, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        reason = s3.probe(creds)
        while reason is not None:
            if not server.running():
                pytest.fail(f"S3 server exited\n{server.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"S3 server not ready: {reason}\n{server.log_tail()}")
            time.sleep(0.05)
            reason = s3.probe(creds)
        s3.ensure_bucket(creds)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real S3 server for the whole session (stopped at the end)."""
    server = start_s3_server(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_credentials(s3_server: S3Server) -> s3.S3Credentials:
    """The credentials of the session's S3 server (bucket already created)."""
    return s3_server.creds
