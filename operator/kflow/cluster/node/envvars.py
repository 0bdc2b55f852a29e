"""A container's environment, resolved the way kubelet does it.

Owns: `$(VAR)` expansion (a port of Kubernetes' third_party expansion package:
`$$` escapes, unknown references stay verbatim), `env` / `envFrom` resolution
(value, fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef, optional refs,
prefixes) and the expansion of `command` / `args`.

Pure: ConfigMaps and Secrets come through the `Lookups` protocol, everything else
from the pod dict (camelCase, as the API serves it). Imports no kflow module
outside `kflow.cluster.node` and no Kubernetes client.

Differences from kubelet, on purpose: the expansion mapping also contains the
node-provided `KFLOW_*` variables (volume directories, termination-message path),
so `args: ["--out", "$(KFLOW_VOLUME_DATA)"]` works; service links (`FOO_SERVICE_HOST`
for every Service) are not generated, only `KUBERNETES_SERVICE_HOST/PORT`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from kflow.cluster.node.quantity import ceil_div, parse_quantity

CONFIG_ERROR = "CreateContainerConfigError"


class EnvError(Exception):
    """The environment cannot be built; the message is shown in the container status."""


class Lookups(Protocol):
    """Read access to the pod's namespace (None when the object does not exist)."""

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None: ...


@dataclass(frozen=True)
class PodFacts:
    """What fieldRef / resourceFieldRef can read besides the pod dict itself."""

    pod_ip: str
    host_ip: str
    node_cpu: Decimal
    node_memory: Decimal


def expand(text: str, mapping: Callable[[str], str | None]) -> str:
    """Expand `$(NAME)` references in `text`; `$$` is a literal `$`.

    A reference whose name is unknown (mapping returns None) stays as written.
    """
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            advance = 1
            if rest[0] == "$":
                out.append("$")
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:
                    out.append("$(")
                else:
                    name = rest[1:close]
                    value = mapping(name)
                    out.append(f"$({name})" if value is None else value)
                    advance = close + 1
            else:
                out.append("$" + rest[0])
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def field_value(pod: Mapping[str, Any], path: str, facts: PodFacts) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    for prefix, key in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "["):
            name = path[len(prefix) + 1 : -1].strip("'\"")
            return str((meta.get(key) or {}).get(name, ""))
    simple: dict[str, str] = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "") or "default",
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path not in simple:
        raise EnvError(f"unsupported fieldRef fieldPath {path!r}")
    return simple[path]


def _resource_value(
    pod: Mapping[str, Any], container: Mapping[str, Any], ref: Mapping[str, Any], facts: PodFacts
) -> str:
    target = container
    if ref.get("containerName"):
        all_containers = [
            *((pod.get("spec") or {}).get("initContainers") or []),
            *((pod.get("spec") or {}).get("containers") or []),
        ]
        named = [c for c in all_containers if c.get("name") == ref["containerName"]]
        if not named:
            raise EnvError(f"resourceFieldRef: container {ref['containerName']!r} not found")
        target = named[0]
    resources = target.get("resources") or {}
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory"):
        raise EnvError(f"unsupported resourceFieldRef resource {resource!r}")
    raw = (resources.get(kind) or {}).get(name)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(name)
    if raw is None:
        value = (
            (facts.node_cpu if name == "cpu" else facts.node_memory)
            if kind == "limits"
            else Decimal(0)
        )
    else:
        value = parse_quantity(raw)
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(ceil_div(value, divisor))


def _key_ref(kind: str, ref: Mapping[str, Any], namespace: str, lookups: Lookups) -> str | None:
    name = str(ref.get("name", ""))
    key = str(ref.get("key", ""))
    optional = bool(ref.get("optional", False))
    data = (
        lookups.config_map(namespace, name)
        if kind == "ConfigMap"
        else lookups.secret(namespace, name)
    )
    if data is None:
        if optional:
            return None
        raise EnvError(f'{kind.lower()} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise EnvError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


def resolve_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    lookups: Lookups,
    facts: PodFacts,
    visible: Mapping[str, str],
) -> dict[str, str]:
    """The variables the container declares (envFrom, then env), expanded.

    `visible` holds variables that `$(VAR)` may reference but the container did not
    declare (service variables, node-provided `KFLOW_*`); they are not returned.
    Raises EnvError for a missing non-optional ConfigMap/Secret/key.
    """
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    declared: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field)
            if not ref:
                continue
            data = (
                lookups.config_map(namespace, ref.get("name", ""))
                if kind == "ConfigMap"
                else lookups.secret(namespace, ref.get("name", ""))
            )
            if data is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            for key, text in data.items():
                if "=" not in key and key:
                    declared[prefix + key] = text

    def lookup(name: str) -> str | None:
        return declared[name] if name in declared else visible.get(name)

    for item in container.get("env") or []:
        name = str(item.get("name", ""))
        source = item.get("valueFrom")
        if not source:
            declared[name] = expand(str(item.get("value") or ""), lookup)
            continue
        value: str | None
        if "fieldRef" in source:
            value = field_value(pod, str(source["fieldRef"].get("fieldPath", "")), facts)
        elif "resourceFieldRef" in source:
            value = _resource_value(pod, container, source["resourceFieldRef"], facts)
        elif "configMapKeyRef" in source:
            value = _key_ref("ConfigMap", source["configMapKeyRef"], namespace, lookups)
        elif "secretKeyRef" in source:
            value = _key_ref("Secret", source["secretKeyRef"], namespace, lookups)
        else:
            raise EnvError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            declared[name] = value
    return declared


def expand_argv(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Expand `$(VAR)` in command/args against the container's final environment."""
    return [expand(arg, env.get) for arg in argv]
