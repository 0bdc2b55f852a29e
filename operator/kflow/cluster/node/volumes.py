"""Pod volumes as plain directories, handed to processes through environment variables.

There are no mount namespaces on the process node, so a process cannot see a volume
at its `mountPath`. Two stand-ins:

* every volumeMount of a container becomes an environment variable
  `KFLOW_VOLUME_<MOUNT NAME>` (upper-cased, `-` and `.` → `_`) holding the host
  directory (joined with `subPath` when given); `$(KFLOW_VOLUME_DATA)` also works in
  command/args;
* a mount path written in the container's command, args, env values or workingDir
  is replaced by that host directory (`host_paths`): `-dir=/data` runs as
  `-dir=<pod dir>/volumes/data`, `HOME=/tmp` as the pod's tmp volume. Only whole
  path prefixes count (`/data/x` yes, `/database` and `/x/data` no). Paths a program
  builds itself, or reads from a file, are not rewritten.

Supported volume types:

* emptyDir → `<pod dir>/volumes/<name>/`, shared by the pod's containers, deleted
  with the pod;
* hostPath → the host path itself;
* persistentVolumeClaim → the directory of the PersistentVolume the claim is bound to
  (`hostPath` or `local` volumes; a claim not bound yet is retried like a missing
  ConfigMap);
* configMap / secret / projected (configMap, secret, downwardAPI fieldRef,
  serviceAccountToken sources — so the admission-injected `kube-api-access-*` volume
  holds `token`, `ca.crt` and `namespace`) → files written once, before the first
  container starts.

Other types (csi, nfs, …) get no directory and no variable.
`render_files` is pure; `prepare_volumes` writes. Imports nothing from kflow
outside `kflow.cluster.node`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from kflow.cluster.node.envvars import Lookups, PodFacts, field_value


class VolumeError(Exception):
    """A volume cannot be set up yet (missing ConfigMap/Secret, unbound claim); retried."""


class VolumeLookups(Lookups, Protocol):
    """Lookups plus the claims behind persistentVolumeClaim volumes."""

    def claim_directory(self, namespace: str, claim: str) -> Path:
        """The host directory of the volume bound to `claim`; VolumeError if none yet."""
        ...


def env_name(mount_name: str) -> str:
    return "KFLOW_VOLUME_" + re.sub(r"[^A-Za-z0-9_]", "_", mount_name).upper()


def _items(
    data: Mapping[str, str] | None,
    items: list[dict[str, Any]] | None,
    what: str,
    optional: bool,
) -> dict[str, bytes]:
    if data is None:
        if optional:
            return {}
        raise VolumeError(f"{what} not found")
    if not items:
        return {key: value.encode() for key, value in data.items()}
    files: dict[str, bytes] = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in data:
            if optional:
                continue
            raise VolumeError(f"{what}: key {key!r} not found")
        files[str(item.get("path", key))] = data[key].encode()
    return files


def _object_files(
    kind: str, ref: Mapping[str, Any], name_key: str, namespace: str, lookups: Lookups
) -> dict[str, bytes]:
    """Files of one configMap or secret reference (a volume or a projected source)."""
    name = str(ref.get(name_key, ""))
    data = (lookups.config_map if kind == "configmap" else lookups.secret)(namespace, name)
    return _items(data, ref.get("items"), f'{kind} "{name}"', bool(ref.get("optional")))


def render_files(
    volume: Mapping[str, Any],
    pod: Mapping[str, Any],
    lookups: Lookups,
    facts: PodFacts,
    token: str | None,
) -> dict[str, bytes] | None:
    """Files of a configMap/secret/projected volume (relative path → bytes); None otherwise."""
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    if "configMap" in volume:
        return _object_files("configmap", volume["configMap"], "name", namespace, lookups)
    if "secret" in volume:
        return _object_files("secret", volume["secret"], "secretName", namespace, lookups)
    if "projected" not in volume:
        return None
    files: dict[str, bytes] = {}
    for source in volume["projected"].get("sources") or []:
        if "serviceAccountToken" in source:
            if token is not None:
                files[source["serviceAccountToken"].get("path", "token")] = token.encode()
        elif "configMap" in source:
            files.update(_object_files("configmap", source["configMap"], "name", namespace,
                                       lookups))
        elif "secret" in source:
            files.update(_object_files("secret", source["secret"], "name", namespace, lookups))
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                if "fieldRef" in item:
                    path = str(item["fieldRef"].get("fieldPath", ""))
                    files[str(item.get("path"))] = field_value(pod, path, facts).encode()
    return files


def _safe_join(base: Path, relative: str) -> Path:
    target = (base / relative).resolve()
    if not target.is_relative_to(base.resolve()):
        raise VolumeError(f"path {relative!r} escapes the volume")
    return target


def prepare_volumes(
    pod: Mapping[str, Any],
    pod_dir: Path,
    lookups: VolumeLookups,
    facts: PodFacts,
    token: str | None,
) -> dict[str, Path]:
    """Create every volume's directory (writing files where needed): name → directory."""
    dirs: dict[str, Path] = {}
    namespace = str((pod.get("metadata") or {}).get("namespace", "default"))
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = str(volume.get("name", ""))
        if "hostPath" in volume:
            dirs[name] = Path(volume["hostPath"].get("path", "/"))
            continue
        if "persistentVolumeClaim" in volume:
            claim = str(volume["persistentVolumeClaim"].get("claimName", ""))
            try:
                dirs[name] = lookups.claim_directory(namespace, claim)
                dirs[name].mkdir(parents=True, exist_ok=True)   # as a bind mount does
            except VolumeError as exc:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {exc}') \
                    from exc
            continue
        base = pod_dir / "volumes" / name
        try:
            files = render_files(volume, pod, lookups, facts, token)
        except VolumeError as exc:
            raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {exc}') from exc
        if files is None and "emptyDir" not in volume:
            continue
        base.mkdir(parents=True, exist_ok=True)
        for relative, content in (files or {}).items():
            target = _safe_join(base, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        dirs[name] = base
    return dirs


def mount_env(container: Mapping[str, Any], dirs: Mapping[str, Path]) -> dict[str, str]:
    """`KFLOW_VOLUME_<MOUNT>` for each of the container's volumeMounts that has a directory."""
    env: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        directory = dirs.get(str(mount.get("name", "")))
        if directory is None:
            continue
        sub = mount.get("subPath")
        path = directory / sub if sub else directory
        env[env_name(str(mount.get("name", "")))] = str(path)
    return env


def mount_table(container: Mapping[str, Any], dirs: Mapping[str, Path]) -> list[tuple[str, str]]:
    """(mountPath, host directory) of the container's mounts, longest mount path first."""
    table: list[tuple[str, str]] = []
    for mount in container.get("volumeMounts") or []:
        directory = dirs.get(str(mount.get("name", "")))
        mount_path = str(mount.get("mountPath") or "").rstrip("/")
        if directory is None or not mount_path.startswith("/"):
            continue                      # "/" itself is never rewritten
        sub = mount.get("subPath")
        table.append((mount_path, str(directory / sub if sub else directory)))
    return sorted(table, key=lambda entry: len(entry[0]), reverse=True)


# Where a path may start and end inside a string: `-dir=/data`, `a:/data/x`, `"/data"`.
_BEFORE = r"(?<![^\s=:,;\"'(])"
_AFTER = r"(?![^/\s=:,;\"')])"


def host_paths(text: str, table: Sequence[tuple[str, str]]) -> str:
    """`text` with every mount path in it (a whole path prefix) replaced by its host
    directory; `table` from `mount_table`."""
    if not table or "/" not in text:
        return text
    pattern = re.compile(_BEFORE + "(" + "|".join(re.escape(m) for m, _ in table) + ")" + _AFTER)
    hosts = dict(table)
    return pattern.sub(lambda match: hosts[match.group(1)], text)


def decode_secret(data: Mapping[str, str] | None) -> dict[str, str]:
    """A Secret's base64 `data` as text."""
    return {
        key: base64.b64decode(value).decode("utf-8", errors="replace")
        for key, value in (data or {}).items()
    }
