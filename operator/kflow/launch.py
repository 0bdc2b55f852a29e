"""`python flow.py run | trigger`: create a FlowRun and follow it to its end.

Owns: the FlowRun a flow file asks for (`run_request` → `flowrun_body`, both
pure: parameter values checked with each `Parameter`'s own parsing, strings as
the CRD wants, tags, parallelism, ``generateName``, the ``kflow.dev/user``
annotation), its creation, and the following of the run: a watch on that one
object (field selector ``metadata.name``; a new watch after each server
timeout or ``410 Gone``, from a fresh read) that prints the lines of
`kflow.progress` until the run is Succeeded, Failed or Stopped.

`run` deploys first (`kflow.deploy`); `trigger` starts a run of the Flow
already in the cluster. Both then go through `launch`, the one submit-and-follow
path. The Kubernetes calls sit behind the small `RunsApi` protocol
(`KubeRunsApi` is the real one) so that following can be tested with a fake;
their errors become one-line `SubmitError`s through `kflow.submit.api_errors`.

Must not import: kflow_operator, kflow.runner, kflow.store.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TextIO, cast

from kflow import api_types, config, kube, progress
from kflow.api_types import RunPhase
from kflow.submit import SubmitError, api_errors

if TYPE_CHECKING:
    from kflow.parameters import Parameter

__all__ = [
    "KubeRunsApi",
    "RunRequest",
    "RunsApi",
    "flowrun_body",
    "follow",
    "launch",
    "parameter_values",
    "require_flow",
]

WATCH_SECONDS = 60  # server-side timeout of one watch; a new one starts from a fresh read
TERMINAL = frozenset(phase.value for phase in api_types.TERMINAL_PHASES)


def parameter_values(parameters: Sequence[Parameter], given: Mapping[str, str],
                     environ: Mapping[str, str]) -> dict[str, str]:
    """The ``spec.parameters`` of a run: each given ``--<param>`` string (else its
    ``KFLOW_RUN_<NAME>`` variable), checked by the parameter's own parsing.

    Raises `ParameterValueException` for a value that does not parse and for a
    required parameter with neither a value nor a default. Parameters not given
    are left out: the operator uses their defaults.
    """
    values: dict[str, str] = {}
    for param in parameters:
        param.resolve(given, environ)  # parses the text, checks `required`
        if param.name in given:
            values[param.name] = given[param.name]
        elif param.env_var in environ:
            values[param.name] = environ[param.env_var]
    return values


@dataclass(frozen=True)
class RunRequest:
    """What to run: the FlowRun a `run` or `trigger` creates."""

    flow: str                       # the Flow's resource name (``spec.flowRef.name``)
    namespace: str
    user: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()
    max_parallelism: int | None = None
    name: str | None = None         # else ``generateName: <flow>-``


def flowrun_body(request: RunRequest) -> dict[str, Any]:
    """The FlowRun object to create for `request` (crds/kflow.dev_flowruns.yaml)."""
    metadata: dict[str, Any] = {
        "namespace": request.namespace,
        "labels": {**api_types.common_labels(name="kflow", component="run"),
                   api_types.LABEL_FLOW: request.flow},
        "annotations": {api_types.ANNOTATION_USER: request.user},
    }
    if request.name:
        metadata["name"] = request.name
    else:
        metadata["generateName"] = f"{request.flow}-"
    spec: dict[str, Any] = {"flowRef": {"name": request.flow}}
    if request.parameters:
        spec["parameters"] = dict(request.parameters)
    if request.tags:
        spec["tags"] = list(dict.fromkeys(request.tags))  # a set in the CRD: no duplicates
    if request.max_parallelism is not None:
        spec["maxParallelism"] = request.max_parallelism
    return {"apiVersion": api_types.API_VERSION, "kind": api_types.FLOWRUN_KIND,
            "metadata": metadata, "spec": spec}


# --- the Kubernetes side --------------------------------------------------------------


class RunsApi(Protocol):
    """The calls `run` and `trigger` make; errors come out as `SubmitError`."""

    def flow_exists(self, namespace: str, name: str) -> bool: ...

    def create_run(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def get_run(self, namespace: str, name: str) -> dict[str, Any]: ...

    def watch_run(self, namespace: str, name: str,
                  resource_version: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(event type, FlowRun)`` until the watch ends (server timeout or 410 Gone)."""
        ...


class KubeRunsApi:
    """`RunsApi` over the kubernetes client, on the cluster `kflow.config` names."""

    def __init__(self, settings: config.KflowConfig) -> None:
        from kubernetes import client

        self._client = kube.api_client(settings)
        self._api = client.CustomObjectsApi(self._client)

    def close(self) -> None:
        self._client.close()

    def flow_exists(self, namespace: str, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        where = f"flow {name} in namespace {namespace}"
        with api_errors(where, action="read", plural=api_types.FLOW_PLURAL):
            try:
                self._api.get_namespaced_custom_object(
                    api_types.GROUP, api_types.VERSION, namespace, api_types.FLOW_PLURAL, name)
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    def create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        where = (f"a FlowRun of flow {body['spec']['flowRef']['name']} in namespace "
                 f"{meta['namespace']}")
        with api_errors(where, action="create", plural=api_types.FLOWRUN_PLURAL, hints={
                404: "{where}: the cluster does not know FlowRun resources ({message}); "
                     "install kflow's CRDs first: `kubectl apply -f crds/`",
                409: "{where}: a FlowRun of that name exists already; choose another --name"}):
            return cast(dict[str, Any], self._api.create_namespaced_custom_object(
                api_types.GROUP, api_types.VERSION, meta["namespace"], api_types.FLOWRUN_PLURAL,
                body))

    def get_run(self, namespace: str, name: str) -> dict[str, Any]:
        with api_errors(f"FlowRun {name} in namespace {namespace}", action="read",
                        plural=api_types.FLOWRUN_PLURAL):
            return cast(dict[str, Any], self._api.get_namespaced_custom_object(
                api_types.GROUP, api_types.VERSION, namespace, api_types.FLOWRUN_PLURAL, name))

    def watch_run(self, namespace: str, name: str,
                  resource_version: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import ProtocolError, ReadTimeoutError

        stream = watch.Watch()  # type: ignore[no-untyped-call]
        kwargs: dict[str, Any] = {"field_selector": f"metadata.name={name}",
                                  "timeout_seconds": WATCH_SECONDS,
                                  "_request_timeout": (10, WATCH_SECONDS + 15)}
        if resource_version:
            kwargs["resource_version"] = resource_version
        with api_errors(f"FlowRun {name} in namespace {namespace}", action="watch",
                        plural=api_types.FLOWRUN_PLURAL):
            try:
                for event in stream.stream(  # type: ignore[no-untyped-call]
                        self._api.list_namespaced_custom_object, api_types.GROUP,
                        api_types.VERSION, namespace, api_types.FLOWRUN_PLURAL, **kwargs):
                    yield str(event["type"]), cast(dict[str, Any], event["object"])
            except ApiException as exc:
                if exc.status != 410:  # 410 Gone: that version is too old; read again
                    raise
            except (ReadTimeoutError, ProtocolError):
                pass  # the connection ended without the server's goodbye: read again
            finally:
                stream.stop()  # type: ignore[no-untyped-call]


def require_flow(api: RunsApi, namespace: str, flow: str, prog: str) -> None:
    """SubmitError unless the Flow `flow` is deployed in `namespace`."""
    if not api.flow_exists(namespace, flow):
        raise SubmitError(f"flow {flow} is not deployed in namespace {namespace}: deploy it "
                          f"first with `python {prog} deploy` (or start it with "
                          f"`python {prog} run`, which deploys)")


def _phase(run: Mapping[str, Any]) -> str | None:
    phase = (run.get("status") or {}).get("phase")
    return str(phase) if phase else None


def follow(api: RunsApi, namespace: str, name: str,
           on_update: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Watch FlowRun `name` until its phase is terminal, calling `on_update` with each
    version seen; the last one. SubmitError when the run is deleted meanwhile."""
    while True:
        run = api.get_run(namespace, name)
        on_update(run)
        if _phase(run) in TERMINAL:
            return run
        version = (run.get("metadata") or {}).get("resourceVersion")
        for kind, obj in api.watch_run(namespace, name, version):
            if kind == "DELETED":
                raise SubmitError(f"FlowRun {name} in namespace {namespace} was deleted "
                                  "while it ran")
            if kind in ("ADDED", "MODIFIED"):
                on_update(obj)
                if _phase(obj) in TERMINAL:
                    return obj


class _Printer:
    """Prints the progress lines: redrawn in place on a terminal, appended otherwise."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._log = progress.ProgressLog()
        self._drawn: list[str] = []

    def update(self, run: dict[str, Any]) -> None:
        status = run.get("status") or {}
        if not self._tty:
            lines = self._log.feed(status)
        else:
            block = [line for _, line in progress.status_lines(status)]
            if block == self._drawn:
                return
            if self._drawn:  # back to the block's first line, clear to the end
                self._out.write(f"\x1b[{len(self._drawn)}F\x1b[J")
            self._drawn = lines = block
        for line in lines:
            self._out.write(line + "\n")
        self._out.flush()


def launch(api: RunsApi, request: RunRequest, *, detach: bool, prog: str,
           out: TextIO | None = None) -> int:
    """Create the run and, unless `detach`, follow it: the exit code (0 Succeeded,
    1 Failed or Stopped, 130 when Ctrl-C stops the following; the run goes on)."""
    out = out or sys.stdout
    created = api.create_run(flowrun_body(request))
    name = str(created["metadata"]["name"])
    namespace = str(created["metadata"].get("namespace") or request.namespace)
    print(f"flowrun.{api_types.GROUP}/{name} in namespace {namespace} created "
          f"(flow {request.flow})", file=out, flush=True)
    if detach:
        print(f"  kubectl get fr {name} -n {namespace} -w", file=out)
        return 0
    printer = _Printer(out)
    try:
        run = follow(api, namespace, name, printer.update)
    except KeyboardInterrupt:
        print("\n" + "\n".join(progress.interrupted_lines(name, namespace, prog)), file=out)
        return 130
    print("\n".join(progress.outcome_lines(run, prog)), file=out, flush=True)
    return 0 if _phase(run) == RunPhase.SUCCEEDED.value else 1
