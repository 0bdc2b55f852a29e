"""The operator's configuration, read once from environment variables (pure).

Owns: `OperatorConfig`, `SettingsError` and `from_env`. Every variable, its default
and its meaning:

=================================  ================  =====================================
variable                           default           meaning
=================================  ================  =====================================
``KFLOW_WATCH_NAMESPACES``         (all)             comma-separated namespaces to watch;
                                                     empty: the whole cluster
``KFLOW_STEP_SERVICE_ACCOUNT``     ``kflow-step``    step pods' service account (no rights)
``KFLOW_S3_SECRET_NAME``           ``kflow-s3``      Secret with ``KFLOW_S3_*`` for pods
``KFLOW_S3_CONFIG_NAME``           (none)            ConfigMap with the store's endpoint,
                                                    bucket and region (the Helm chart's)
``KFLOW_DEFAULT_REQUESTS``         ``cpu=100m,memory=256Mi``  requests of a step that
                                                     sets none for a resource
``KFLOW_DEFAULT_LIMITS``           (none)            limits likewise
``KFLOW_STEP_RUN_AS_USER``         ``1000``          runAsUser of step pods; ``image``:
``KFLOW_STEP_RUN_AS_GROUP``        ``1000``          leave it to the image (non-root)
``KFLOW_DEADLINE_GRACE_SECONDS``   ``120``           added to timeoutSeconds for the
                                                     pod's activeDeadlineSeconds
``KFLOW_TERMINATION_GRACE_SECONDS`` ``30``           terminationGracePeriodSeconds
``KFLOW_STEP_CODE_CACHE``          (runner default)  KFLOW_CODE_CACHE of step pods
``KFLOW_INFRA_RETRIES``            ``3``             attempts a task may lose to the
                                                     platform (evicted, preempted, …)
``KFLOW_PENDING_TIMEOUT_SECONDS``  ``600``           a pod pending this long fails its
                                                     step (Unschedulable, image, launch)
``KFLOW_DRIVER_TIMEOUT_SECONDS``   ``120``           a hybrid run whose driver has not
                                                     reported for this long fails
                                                     (DriverLost)
``KFLOW_POD_CREATES_PER_SECOND``   ``10``            token bucket of pod creates
``KFLOW_POD_CREATE_BURST``         ``20``
``KFLOW_STATUS_WRITES_PER_SECOND`` ``5``             token bucket of FlowRun status writes
``KFLOW_STATUS_WRITE_BURST``       ``10``
``KFLOW_METRICS_PORT``             ``8080``          Prometheus ``/metrics``; ``0``: off
``KFLOW_METRICS_ADDRESS``          ``127.0.0.1``     address it binds (``0.0.0.0``: all)
=================================  ================  =====================================

A bad value raises `SettingsError` naming the variable, the value and what is expected.
Imports only the standard library and `kflow_operator.podspec`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from kflow_operator.podspec import DEFAULT_REQUESTS, PodConfig

__all__ = ["OperatorConfig", "SettingsError", "from_env"]

# A Kubernetes quantity (resource.Quantity's grammar, without the exotic forms).
_QUANTITY: Final = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
                              r"([eE][-+]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$")
_RESOURCE_NAME: Final = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?"
                                   r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class SettingsError(ValueError):
    """An environment variable has a value the operator cannot use."""


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator reads from its environment (see the module docstring)."""

    namespaces: tuple[str, ...] = ()
    pod: PodConfig = field(default_factory=PodConfig)
    infra_retries: int = 3
    pending_timeout_seconds: float = 600.0
    driver_timeout_seconds: float = 120.0
    pod_creates_per_second: float = 10.0
    pod_create_burst: int = 20
    status_writes_per_second: float = 5.0
    status_write_burst: int = 10
    metrics_port: int = 8080
    metrics_address: str = "127.0.0.1"

    @property
    def cluster_wide(self) -> bool:
        """True when no namespace is named: watch them all."""
        return not self.namespaces


def _bad(name: str, value: str, expected: str) -> SettingsError:
    return SettingsError(f"{name}={value!r}: expected {expected}")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0,
         maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, raw, "a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"≥ {minimum}" if maximum is None else f"{minimum} … {maximum}"
        raise _bad(name, raw, f"a whole number {bounds}")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _bad(name, raw, "a positive number") from None
    if not (value > 0 and math.isfinite(value)):
        raise _bad(name, raw, "a positive number")
    return value


def _user_id(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name, "").strip()
    if raw.lower() == "image":
        return None
    value = _int(env, name, default if default is not None else -1, minimum=1)
    return None if value == -1 else value


def _quantities(env: Mapping[str, str], name: str,
                default: Mapping[str, str]) -> dict[str, str]:
    if name not in env:
        return dict(default)
    raw = env[name].strip()
    result: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _RESOURCE_NAME.match(key) or not _QUANTITY.match(value):
            raise _bad(name, raw, "resource=quantity pairs separated by commas, "
                       "e.g. cpu=100m,memory=256Mi (empty: none)")
        result[key] = value
    return result


def _name(env: Mapping[str, str], var: str, default: str, pattern: re.Pattern[str]) -> str:
    value = env.get(var, "").strip() or default
    if len(value) > 253 or not pattern.match(value):
        raise _bad(var, value, "a Kubernetes object name (lowercase letters, digits, '-')")
    return value


def _address(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        raise _bad(name, raw, "an IP address (127.0.0.1, 0.0.0.0, ::)") from None
    return raw


def from_env(environ: Mapping[str, str] | None = None) -> OperatorConfig:
    """The configuration in `environ` (default: os.environ); `SettingsError` if bad."""
    env = os.environ if environ is None else environ
    namespaces = tuple(sorted({part.strip() for part in
                               env.get("KFLOW_WATCH_NAMESPACES", "").split(",")
                               if part.strip()}))
    for namespace in namespaces:
        if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
            raise _bad("KFLOW_WATCH_NAMESPACES", env["KFLOW_WATCH_NAMESPACES"],
                       "namespace names separated by commas")
    pod = PodConfig(
        step_service_account=_name(env, "KFLOW_STEP_SERVICE_ACCOUNT", "kflow-step",
                                   _DNS_SUBDOMAIN),
        s3_secret_name=_name(env, "KFLOW_S3_SECRET_NAME", "kflow-s3", _DNS_SUBDOMAIN),
        s3_config_name=(_name(env, "KFLOW_S3_CONFIG_NAME", "", _DNS_SUBDOMAIN)
                        if env.get("KFLOW_S3_CONFIG_NAME", "").strip() else None),
        default_requests=_quantities(env, "KFLOW_DEFAULT_REQUESTS", DEFAULT_REQUESTS),
        default_limits=_quantities(env, "KFLOW_DEFAULT_LIMITS", {}),
        run_as_user=_user_id(env, "KFLOW_STEP_RUN_AS_USER", 1000),
        run_as_group=_user_id(env, "KFLOW_STEP_RUN_AS_GROUP", 1000),
        deadline_grace_seconds=_int(env, "KFLOW_DEADLINE_GRACE_SECONDS", 120),
        termination_grace_seconds=_int(env, "KFLOW_TERMINATION_GRACE_SECONDS", 30),
        code_cache_dir=env.get("KFLOW_STEP_CODE_CACHE", "").strip() or None,
    )
    return OperatorConfig(
        namespaces=namespaces,
        pod=pod,
        infra_retries=_int(env, "KFLOW_INFRA_RETRIES", 3, maximum=100),
        pending_timeout_seconds=_positive(env, "KFLOW_PENDING_TIMEOUT_SECONDS", 600.0),
        driver_timeout_seconds=_positive(env, "KFLOW_DRIVER_TIMEOUT_SECONDS", 120.0),
        pod_creates_per_second=_positive(env, "KFLOW_POD_CREATES_PER_SECOND", 10.0),
        pod_create_burst=_int(env, "KFLOW_POD_CREATE_BURST", 20, minimum=1),
        status_writes_per_second=_positive(env, "KFLOW_STATUS_WRITES_PER_SECOND", 5.0),
        status_write_burst=_int(env, "KFLOW_STATUS_WRITE_BURST", 10, minimum=1),
        metrics_port=_int(env, "KFLOW_METRICS_PORT", 8080, maximum=65535),
        metrics_address=_address(env, "KFLOW_METRICS_ADDRESS", "127.0.0.1"),
    )
