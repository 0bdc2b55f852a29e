"""The SDK's door to the Kubernetes API: a client built from kflow's configuration.

Owns: loading the kubeconfig and context that `kflow.config` names, with one
clear error when that fails. `deploy` and `submit` use it; the kubernetes
package is imported only when a command actually talks to a cluster.
"""

from __future__ import annotations

from typing import Any

from kflow.config import ConfigError, KflowConfig


def api_client(settings: KflowConfig) -> Any:
    """A `kubernetes.client.ApiClient` for the configured kubeconfig and context; inside
    a pod with no kubeconfig, its service account (in-cluster configuration)."""
    import os

    from kubernetes import client
    from kubernetes import config as kube_config

    try:
        return kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=settings.kubeconfig, context=settings.context)
    except (kube_config.ConfigException, OSError) as exc:
        if not settings.kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            try:
                kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration)
            except kube_config.ConfigException:
                pass
            else:
                return client.ApiClient(configuration)
        raise ConfigError(
            f"can't load the kubeconfig ({settings.kubeconfig or '~/.kube/config'}): {exc}. "
            f"Set KUBECONFIG or `kflow configure --kubeconfig`.") from exc
