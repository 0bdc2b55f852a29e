"""Where kflow finds the object store and the cluster: the config file and the environment.

Owns: reading, merging and writing kflow's configuration. Sources, the later
winning: built-in defaults, the config file (`KFLOW_CONFIG`, else
`~/.kflow/config.yaml`, written by `kflow configure` and, for the embedded
cluster, by `kflow cluster up` into the cluster folder), then environment
variables:

    KFLOW_S3_ENDPOINT, KFLOW_S3_POD_ENDPOINT, KFLOW_S3_BUCKET, KFLOW_S3_REGION,
    KFLOW_S3_ACCESS_KEY, KFLOW_S3_SECRET_KEY,
    KFLOW_S3_CREDENTIALS   (a JSON file: endpoint, accessKey, secretKey, bucket, region —
                            the embedded cluster's s3-credentials.json),
    KFLOW_NAMESPACE, KFLOW_KUBE_CONTEXT, KFLOW_IMAGE, KUBECONFIG

The file format (YAML; every key optional):

    s3:
      endpoint: https://minio.example.com     # as seen from where `deploy` runs
      podEndpoint: http://minio.kflow:9000    # as seen from step pods (default: endpoint)
      bucket: kflow
      region: us-east-1
      accessKey: AKIA...
      secretKey: ...                          # or secretKeyFile: /path/to/file
      credentialsFile: /path/s3-credentials.json
    kubernetes:
      kubeconfig: ~/.kube/config
      context: prod
      namespace: ml
    image: ghcr.io/kflow/kflow-runner:0.1.0

Secrets are never printed: `KflowConfig.describe()` masks them.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

DEFAULT_IMAGE = f"ghcr.io/kflow/kflow-runner:{metadata.version('kflow')}"
DEFAULT_BUCKET = "kflow"
DEFAULT_REGION = "us-east-1"
DEFAULT_NAMESPACE = "default"


class ConfigError(ValueError):
    """The configuration can't be read or is incomplete; the message says what to do."""


def local_user(environ: Mapping[str, str] | None = None) -> str:
    """Who is running kflow here: ``KFLOW_USER``, else the login name (a run's user and
    @project's user branch)."""
    environ = os.environ if environ is None else environ
    return environ.get("KFLOW_USER") or getpass.getuser()


@dataclass(frozen=True)
class S3Settings:
    """How to reach the object store."""

    endpoint: str | None = None
    pod_endpoint: str | None = None
    bucket: str = DEFAULT_BUCKET
    region: str = DEFAULT_REGION
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)

    @property
    def endpoint_for_pods(self) -> str | None:
        return self.pod_endpoint or self.endpoint

    def object_store(self, retry: Any = None) -> Any:
        """A `kflow.store.s3.S3ObjectStore` for these settings (a `RetryPolicy` or None
        for its default); minio is imported only now."""
        from kflow.store.s3 import S3Config, S3ObjectStore

        return S3ObjectStore(S3Config(self.endpoint or "", self.access_key or "",
                                      self.secret_key or "", self.bucket, self.region),
                             retry=retry)


@dataclass(frozen=True)
class KflowConfig:
    """The merged configuration, and where each part came from."""

    s3: S3Settings = field(default_factory=S3Settings)
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE
    sources: tuple[str, ...] = ()

    def require_s3(self) -> S3Settings:
        """The S3 settings, or a ConfigError naming what is missing and how to set it."""
        missing = [name for name, value in (
            ("endpoint", self.s3.endpoint), ("access key", self.s3.access_key),
            ("secret key", self.s3.secret_key)) if not value]
        if missing:
            raise ConfigError(
                f"the object store's {', '.join(missing)} is not configured: run `kflow "
                f"configure --s3-endpoint URL --s3-access-key KEY --s3-secret-key-stdin`, set "
                f"KFLOW_S3_ENDPOINT/KFLOW_S3_ACCESS_KEY/KFLOW_S3_SECRET_KEY, or, for the "
                f"embedded cluster, `eval \"$(kflow cluster env)\"`"
            )
        return self.s3

    def describe(self) -> str:
        """A readable summary with secrets masked."""
        s3 = self.s3
        secret = "(set)" if s3.secret_key else "(not set)"
        lines = [
            f"s3.endpoint:    {s3.endpoint or '(not set)'}",
            f"s3.podEndpoint: {s3.pod_endpoint or '(same as endpoint)'}",
            f"s3.bucket:      {s3.bucket}",
            f"s3.region:      {s3.region}",
            f"s3.accessKey:   {s3.access_key or '(not set)'}",
            f"s3.secretKey:   {secret}",
            f"kubeconfig:     {self.kubeconfig or '(default)'}",
            f"context:        {self.context or '(current)'}",
            f"namespace:      {self.namespace}",
            f"image:          {self.image}",
            f"sources:        {', '.join(self.sources) or '(defaults only)'}",
        ]
        return "\n".join(lines)


def default_path(environ: Mapping[str, str] = os.environ) -> Path:
    """`KFLOW_CONFIG`, else `~/.kflow/config.yaml`."""
    if env := environ.get("KFLOW_CONFIG"):
        return Path(env).expanduser()
    return Path.home() / ".kflow" / "config.yaml"


def _credentials_file(path: str, where: str) -> dict[str, str]:
    try:
        doc = json.loads(Path(path).expanduser().read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: can't read the S3 credentials file {path}: {exc}") from exc
    keys = {"endpoint": "endpoint", "accessKey": "access_key", "secretKey": "secret_key",
            "bucket": "bucket", "region": "region"}
    return {ours: str(doc[theirs]) for theirs, ours in keys.items() if doc.get(theirs)}


def _from_file(path: Path) -> dict[str, Any]:
    """Flat settings (S3Settings / KflowConfig field names) from a config file."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}; fix it or run `kflow configure` "
                          f"to rewrite it") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top, found {type(doc).__name__}")
    unknown = set(doc) - {"s3", "kubernetes", "image"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"valid: s3, kubernetes, image")
    s3 = doc.get("s3") or {}
    kube = doc.get("kubernetes") or {}
    out: dict[str, Any] = {}
    if s3.get("credentialsFile"):
        out.update(_credentials_file(s3["credentialsFile"], f"{path}: s3.credentialsFile"))
    names = {"endpoint": "endpoint", "podEndpoint": "pod_endpoint", "bucket": "bucket",
             "region": "region", "accessKey": "access_key", "secretKey": "secret_key"}
    for key, ours in names.items():
        if s3.get(key) is not None:
            out[ours] = str(s3[key])
    if s3.get("secretKeyFile"):
        try:
            out["secret_key"] = Path(s3["secretKeyFile"]).expanduser().read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{path}: s3.secretKeyFile: {exc}") from exc
    for key, ours in {"kubeconfig": "kubeconfig", "context": "context",
                      "namespace": "namespace"}.items():
        if kube.get(key):
            out[ours] = str(kube[key])
    if doc.get("image"):
        out["image"] = str(doc["image"])
    return out


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if path := environ.get("KFLOW_S3_CREDENTIALS"):
        out.update(_credentials_file(path, "KFLOW_S3_CREDENTIALS"))
    names = {"KFLOW_S3_ENDPOINT": "endpoint", "KFLOW_S3_POD_ENDPOINT": "pod_endpoint",
             "KFLOW_S3_BUCKET": "bucket", "KFLOW_S3_REGION": "region",
             "KFLOW_S3_ACCESS_KEY": "access_key", "KFLOW_S3_SECRET_KEY": "secret_key",
             "KFLOW_NAMESPACE": "namespace", "KFLOW_KUBE_CONTEXT": "context",
             "KFLOW_IMAGE": "image", "KUBECONFIG": "kubeconfig"}
    for var, ours in names.items():
        if environ.get(var):
            out[ours] = environ[var]
    return out


_S3_FIELDS = {"endpoint", "pod_endpoint", "bucket", "region", "access_key", "secret_key"}


def _apply(config: KflowConfig, values: Mapping[str, Any], source: str) -> KflowConfig:
    if not values:
        return config
    s3 = replace(config.s3, **{k: v for k, v in values.items() if k in _S3_FIELDS})
    rest = {k: v for k, v in values.items() if k not in _S3_FIELDS}
    return replace(config, s3=s3, sources=(*config.sources, source), **rest)


def load(path: Path | None = None, environ: Mapping[str, str] = os.environ) -> KflowConfig:
    """Defaults, then the config file (if it exists), then the environment."""
    config = KflowConfig()
    file = path or default_path(environ)
    if file.exists():
        config = _apply(config, _from_file(file), str(file))
    elif path is not None or environ.get("KFLOW_CONFIG"):
        raise ConfigError(f"the config file {file} does not exist: create it with "
                          f"`kflow configure` or point KFLOW_CONFIG elsewhere")
    return _apply(config, _from_env(environ), "environment")


def from_environment(environ: Mapping[str, str]) -> KflowConfig:
    """Defaults and the given variables only (no config file)."""
    return _apply(KflowConfig(), _from_env(environ), "environment")


def to_document(config: KflowConfig) -> dict[str, Any]:
    """The config file's YAML document for `config` (only what is set)."""
    s3 = {key: value for key, value in (
        ("endpoint", config.s3.endpoint), ("podEndpoint", config.s3.pod_endpoint),
        ("bucket", config.s3.bucket), ("region", config.s3.region),
        ("accessKey", config.s3.access_key), ("secretKey", config.s3.secret_key),
    ) if value}
    kube = {key: value for key, value in (
        ("kubeconfig", config.kubeconfig), ("context", config.context),
        ("namespace", config.namespace)) if value}
    return {"s3": s3, "kubernetes": kube, "image": config.image}


def write(path: Path, config: KflowConfig) -> None:
    """Write the config file atomically, readable by its owner only (it holds a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# kflow configuration (see `kflow configure --help`)\n")
        yaml.safe_dump(to_document(config), out, sort_keys=False)
    tmp.replace(path)


def merged_file_config(path: Path, updates: Mapping[str, Any]) -> KflowConfig:
    """The file's settings (no environment) with `updates` applied: what `configure` writes."""
    base = _apply(KflowConfig(), _from_file(path), str(path)) if path.exists() else KflowConfig()
    return _apply(base, {k: v for k, v in updates.items() if v is not None}, "command line")
