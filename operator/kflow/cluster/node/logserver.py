"""The node's HTTPS endpoint: what the API server proxies `kubectl logs` to.

Owns `LogRegistry` (which file is each container's current / previous instance and
whether it is still running; pod workers update it) and the server: `GET /healthz`
→ `ok`, `GET /containerLogs/{ns}/{pod}/{container}?follow=&previous=&tailLines=&
limitBytes=&timestamps=&sinceSeconds=&sinceTime=`, 404 for anything else. Followed
logs stream until the container instance stops. No authentication (loopback only;
the API server authorizes `pods/log`). Imports nothing from kflow outside
`kflow.cluster.node`.
"""

from __future__ import annotations

import contextlib
import logging
import select as _select
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from kflow.cluster.node.logfiles import (
    ByteBudget,
    LogQuery,
    parse_record,
    parse_timestamp,
    read_records,
    render,
    select,
)

log = logging.getLogger(__name__)
FOLLOW_POLL = 0.2


@dataclass(frozen=True)
class ContainerLogs:
    """Where one container's logs are, as its pod worker last reported."""

    current: Path | None = None
    previous: Path | None = None
    live: Path | None = None  # the instance that is running now, if any
    waiting: str | None = None  # waiting reason when no instance ever ran


class LogRegistry:
    """(namespace, pod) → container → ContainerLogs; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], tuple[str, dict[str, ContainerLogs]]] = {}

    def update(self, namespace: str, pod: str, uid: str, logs: dict[str, ContainerLogs]) -> None:
        with self._lock:
            self._pods[(namespace, pod)] = (uid, dict(logs))

    def forget(self, namespace: str, pod: str, uid: str) -> None:
        with self._lock:
            entry = self._pods.get((namespace, pod))
            if entry is not None and entry[0] == uid:
                del self._pods[(namespace, pod)]

    def get(self, namespace: str, pod: str, container: str) -> ContainerLogs | None:
        with self._lock:
            entry = self._pods.get((namespace, pod))
        return None if entry is None else entry[1].get(container)

    def is_live(self, namespace: str, pod: str, container: str, path: Path) -> bool:
        logs = self.get(namespace, pod, container)
        return logs is not None and logs.live == path


def parse_query(query: dict[str, list[str]], now_ns: int) -> tuple[LogQuery, bool, bool]:
    """→ (LogQuery, follow, previous); raises ValueError on bad numbers."""

    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    def flag(name: str) -> bool:
        return (first(name) or "").lower() in ("true", "1")

    def number(name: str) -> int | None:
        value = first(name)
        return None if value in (None, "") else int(str(value))

    since_ns: int | None = None
    since_seconds = number("sinceSeconds")
    if since_seconds is not None:
        since_ns = now_ns - since_seconds * 1_000_000_000
    since_time = first("sinceTime")
    if since_time:
        since_ns = parse_timestamp(since_time)
    tail = number("tailLines")
    log_query = LogQuery(
        tail_lines=tail if tail is None or tail >= 0 else None,
        limit_bytes=number("limitBytes"),
        since_ns=since_ns,
        timestamps=flag("timestamps"),
    )
    return log_query, flag("follow"), flag("previous")


class _Handler(BaseHTTPRequestHandler):
    server: LogServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("logs endpoint: " + format, *args)

    def _reply(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts == ["healthz"]:
            self._reply(200, "ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._reply(404, "404 page not found\n")
            return
        _, namespace, pod, container = parts
        try:
            query, follow, previous = parse_query(parse_qs(url.query), time.time_ns())
        except ValueError as exc:
            self._reply(400, f"invalid query: {exc}")
            return
        logs = self.server.registry.get(namespace, pod, container)
        if logs is None:
            self._reply(404, f'container "{container}" in pod "{pod}" not found on this node')
            return
        path = logs.previous if previous else logs.current
        if path is None or not path.exists():
            if previous:
                message = f'previous terminated container "{container}" in pod "{pod}" not found'
            else:
                reason = logs.waiting or "ContainerCreating"
                message = f'container "{container}" in pod "{pod}" is waiting to start: {reason}'
            self._reply(404 if previous else 400, message)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self._stream(namespace, pod, container, path, query, follow and not previous)

    def _client_gone(self) -> bool:
        """True once kubectl hung up (a follow would otherwise hold its thread forever)."""
        readable, _, _ = _select.select([self.connection], [], [], 0)
        if not readable:
            return False
        previous = self.connection.gettimeout()
        try:
            self.connection.settimeout(0.05)
            return bool(self.connection.recv(1) == b"")
        except (TimeoutError, ssl.SSLWantReadError, BlockingIOError):
            return False
        except (OSError, ssl.SSLError):
            return True
        finally:
            self.connection.settimeout(previous)

    def _stream(
        self, namespace: str, pod: str, container: str, path: Path, query: LogQuery, follow: bool
    ) -> None:
        budget = ByteBudget(query.limit_bytes)
        with path.open("rb") as f:
            for record in select(read_records(f), query):
                self.wfile.write(budget.take(render(record, query.timestamps)))
                if budget.exhausted:
                    return
            self.wfile.flush()
            if not follow:
                return
            pending = b""
            while True:
                line = f.readline()
                if line:
                    pending += line
                    if not pending.endswith(b"\n"):
                        continue
                    parsed = parse_record(pending)
                    pending = b""
                    if parsed is not None:
                        self.wfile.write(budget.take(render(parsed, query.timestamps)))
                        self.wfile.flush()
                        if budget.exhausted:
                            return
                    continue
                if self._client_gone():
                    return
                if not self.server.registry.is_live(namespace, pod, container, path):
                    # drain what the pumps wrote before the instance ended
                    rest = pending + f.read()
                    for raw in rest.splitlines(keepends=True):
                        last = parse_record(raw)
                        if last is not None and raw.endswith(b"\n"):
                            self.wfile.write(budget.take(render(last, query.timestamps)))
                    return
                time.sleep(FOLLOW_POLL)


class LogServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, cert: str, key: str, registry: LogRegistry) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.registry = registry
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="logs-https", daemon=True)
        thread.start()
        return thread
