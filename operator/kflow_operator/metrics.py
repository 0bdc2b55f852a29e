"""The operator's Prometheus metrics: a small registry, its text exposition, `/metrics`.

Owns: `Counter`, `Gauge`, `Histogram`, `Registry` (the text format 0.0.4, standard
library only: the operator needs a handful of metrics, not a client library),
`OperatorMetrics` (kflow's metrics, below) and `serve` (a daemon-thread HTTP server
answering ``GET /metrics``). Every metric is thread-safe (kopf's workers and the
requeue timers record concurrently).

===========================================  =========  ==================================
metric                                       type       labels
===========================================  =========  ==================================
``kflow_flowruns``                           gauge      ``phase``: runs seen by this process
``kflow_tasks_started_total``                counter    (pods created)
``kflow_tasks_finished_total``               counter    ``outcome`` succeeded / failed
``kflow_reconcile_duration_seconds``         histogram  ``kind`` flowrun / flow
``kflow_task_transition_seconds``            histogram  (task ready → its pod created)
``kflow_reconcile_errors_total``             counter    ``kind``, ``error`` (exception class)
``kflow_kube_requests_total``                counter    ``verb``, ``outcome`` (ok, notfound,
                                                        conflict, throttled, transient,
                                                        invalid)
``kflow_status_writes_total``                counter    (FlowRun status merge patches)
``kflow_throttle_waits_total``               counter    ``bucket`` pod-create / status-write
``kflow_throttle_wait_seconds_total``        counter    ``bucket``
===========================================  =========  ==================================

A task attempt counts as finished once, when the reconcile first sees it terminal;
attempts that finished before this process started are not counted (counters start
at zero with the process, as Prometheus expects).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final, TypeVar

__all__ = ["CONTENT_TYPE", "Counter", "Gauge", "Histogram", "OperatorMetrics", "Registry",
           "serve"]

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Orchestration delays: 10 ms (a reconcile already running) … 10 s (a slow queue).
TRANSITION_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SEEN_LIMIT: Final = 100_000

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if value != int(value) else str(int(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> Labels:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name}: labels {sorted(labels)}, expected "
                             f"{list(self.labelnames)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def samples(self) -> Iterable[str]:
        raise NotImplementedError

    def exposition(self) -> str:
        head = f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n"
        return head + "".join(f"{line}\n" for line in self.samples())


class Counter(_Metric):
    """A monotonic total per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add `amount` (≥ 0) to the series of `labels`."""
        if amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> Iterable[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in items]


class Gauge(Counter):
    """A value that goes up and down per label set."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = value

    def add(self, amount: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount


class Histogram(_Metric):
    """Observations in cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = (*sorted(buckets), math.inf)
        self._series: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            counts, total = self._series.setdefault(key, ([0] * len(self.buckets), [0.0]))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            total[0] += value

    def samples(self) -> Iterable[str]:
        with self._lock:
            items = sorted((k, (list(c), t[0])) for k, (c, t) in self._series.items())
        lines = []
        for key, (counts, total) in items:
            for bound, count in zip(self.buckets, counts, strict=True):
                le = f'le="{_number(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {count}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {counts[-1]}")
        return lines


_M = TypeVar("_M", bound=_Metric)


class Registry:
    """Metrics in registration order; `exposition()` is the scrape body."""

    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def register(self, metric: _M) -> _M:
        self._metrics.append(metric)
        return metric

    def exposition(self) -> str:
        return "".join(m.exposition() for m in self._metrics)


class OperatorMetrics:
    """kflow's metrics (see the module docstring) and the bookkeeping behind them."""

    def __init__(self, *, started: datetime | None = None) -> None:
        self.registry = Registry()
        r = self.registry
        self.flowruns = r.register(Gauge("kflow_flowruns", "FlowRuns by phase, as this "
                                         "operator last reconciled them.", ("phase",)))
        self.tasks_started = r.register(Counter(
            "kflow_tasks_started_total", "Task attempts started (step pods created)."))
        self.tasks_finished = r.register(Counter(
            "kflow_tasks_finished_total", "Task attempts seen finished, by outcome.",
            ("outcome",)))
        self.reconcile_seconds = r.register(Histogram(
            "kflow_reconcile_duration_seconds", "Duration of one reconcile.", ("kind",)))
        self.transition_seconds = r.register(Histogram(
            "kflow_task_transition_seconds", "Delay from a task becoming runnable (its "
            "parents or previous attempt finished) to its pod being created, by the "
            "operator's clock.", buckets=TRANSITION_BUCKETS))
        self.reconcile_errors = r.register(Counter(
            "kflow_reconcile_errors_total", "Reconciles that raised, by exception class.",
            ("kind", "error")))
        self.kube_requests = r.register(Counter(
            "kflow_kube_requests_total", "Kubernetes API requests by verb and outcome.",
            ("verb", "outcome")))
        self.status_writes = r.register(Counter(
            "kflow_status_writes_total", "FlowRun status writes (one merge patch per "
            "reconcile that changed something; coalesced while throttled)."))
        self.throttle_waits = r.register(Counter(
            "kflow_throttle_waits_total", "Writes that waited for the operator's token "
            "bucket.", ("bucket",)))
        self.throttle_seconds = r.register(Counter(
            "kflow_throttle_wait_seconds_total", "Seconds spent waiting for the operator's "
            "token bucket.", ("bucket",)))
        self._started = started or datetime.now(UTC)
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}
        self._finished: OrderedDict[tuple[str, ...], None] = OrderedDict()

    def run_phase(self, namespace: str, name: str, phase: str | None) -> None:
        """FlowRun `namespace/name` is now in `phase` (None: it is gone)."""
        key = (namespace, name)
        with self._lock:
            old = self._phases.pop(key, None)
            if phase is not None:
                self._phases[key] = phase
            if old == phase:
                return
            if old is not None:
                self.flowruns.add(-1, phase=old)
            if phase is not None:
                self.flowruns.add(1, phase=phase)

    def pod_created(self, ready_at: datetime | None, created_at: datetime) -> None:
        """A step pod was created at `created_at`; its task was runnable since `ready_at`
        (None: unknown, only counted). Clock skew never gives a negative delay."""
        self.tasks_started.inc()
        if ready_at is not None:
            self.transition_seconds.observe(max((created_at - ready_at).total_seconds(), 0.0))

    def task_finished(self, key: tuple[str, ...], outcome: str,
                      finished_at: datetime | None) -> None:
        """Count a terminal attempt once (`key` identifies it); older than us: skipped."""
        if finished_at is not None and finished_at < self._started:
            return
        with self._lock:
            if key in self._finished:
                return
            self._finished[key] = None
            while len(self._finished) > _SEEN_LIMIT:
                self._finished.popitem(last=False)
        self.tasks_finished.inc(outcome=outcome)

    def timed(self, kind: str, reconcile: Callable[[str, str], float | None],
              ) -> Callable[[str, str], float | None]:
        """`reconcile`, timed into the histogram and its exceptions counted."""
        def measured(namespace: str, name: str) -> float | None:
            began = time.monotonic()
            try:
                return reconcile(namespace, name)
            except Exception as exc:
                self.reconcile_errors.inc(kind=kind, error=type(exc).__name__)
                raise
            finally:
                self.reconcile_seconds.observe(time.monotonic() - began, kind=kind)
        return measured

    def throttled(self, bucket: str) -> Callable[[float], None]:
        """A `TokenBucket` ``on_wait`` callback counting the waits of `bucket`."""
        def waited(seconds: float) -> None:
            self.throttle_waits.inc(bucket=bucket)
            self.throttle_seconds.inc(seconds, bucket=bucket)
        return waited


class _Handler(BaseHTTPRequestHandler):
    registry: Registry

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404, "only /metrics is served here")
            return
        body = self.registry.exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics: " + format, *args)


def serve(registry: Registry, host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``GET /metrics`` on `host`:`port` from a daemon thread (`shutdown()` stops)."""
    handler = type("MetricsHandler", (_Handler,), {"registry": registry})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="kflow-metrics", daemon=True)
    thread.start()
    log.info("metrics on http://%s:%d/metrics", host, server.server_address[1])
    return server
