"""`python flow.py deploy`: upload the code package, server-side-apply the Flow.

Owns: the two writes of a deployment and their idempotence. The package is
stored content-addressed (`code/<sha256>.tar.gz`), so an upload is skipped
when that object already exists with the same size; the Flow is applied with
server-side apply (field manager `kflow-deploy`), so unchanged code leaves
the resource and its generation untouched, and changed code updates it in
place and bumps its generation. The only module of the SDK that talks to
Kubernetes and S3 while deploying.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import yaml

from kflow import api_types, config, kube, manifest, packaging
from kflow.exceptions import KflowException

if TYPE_CHECKING:
    from kflow.flowspec import FlowSpec
    from kflow.graph import FlowGraph

FIELD_MANAGER = "kflow-deploy"


class DeployError(KflowException):
    """The deployment could not be written; nothing half-done is left behind."""


@dataclass(frozen=True)
class DeployResult:
    """What a deployment did."""

    name: str
    namespace: str
    package_url: str
    sha256: str
    uploaded: bool
    generation: int | None
    outcome: str  # "created", "updated", "unchanged" or "" on a dry run
    manifest: dict[str, Any]
    dry_run: bool = False

    def describe(self) -> str:
        if self.dry_run:
            return yaml.safe_dump(self.manifest, sort_keys=False).rstrip()
        package = "uploaded" if self.uploaded else "already in the object store"
        flow = f"{self.outcome} (generation {self.generation})"
        return "\n".join([
            f"code package {self.sha256[:12]} {package}: {self.package_url}",
            f"flow.{api_types.GROUP}/{self.name} in namespace {self.namespace} {flow}",
            f"  kubectl get flow {self.name} -n {self.namespace}",
        ])


def upload_package(settings: config.S3Settings, package: packaging.CodePackage) -> tuple[str, bool]:
    """Store the package unless that sha is there already: (its s3:// URL, uploaded?).

    Goes through `kflow.store`, the one owner of S3 access and of the key layout.
    """
    from kflow.store import Datastore, StoreError
    from kflow.store.retry import RetryPolicy

    objects = settings.object_store(RetryPolicy(attempts=4, deadline=10.0))  # a person waits
    key = packaging.package_key(package.sha256)
    url = f"s3://{settings.bucket}/{key}"
    try:
        objects.ensure_bucket()
        if objects.exists(key):
            return url, False
        Datastore(objects).put_code_package(package.sha256, package.data)
    except StoreError as exc:
        raise DeployError(f"uploading the code package to {url} at {settings.endpoint} "
                          f"failed: {str(exc).rstrip('.')}. `kflow configure --show` shows "
                          f"the settings in use.") from exc
    finally:
        objects.close()
    return url, True


def apply_flow(settings: config.KflowConfig, body: dict[str, Any]) -> tuple[int | None, str]:
    """Server-side apply the Flow: (generation after, "created"|"updated"|"unchanged")."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api_client = kube.api_client(settings)
    api = client.CustomObjectsApi(api_client)
    meta = body["metadata"]
    args = (api_types.GROUP, api_types.VERSION, meta["namespace"], api_types.FLOW_PLURAL,
            meta["name"])
    try:
        try:
            current = cast(dict[str, Any], api.get_namespaced_custom_object(*args))
            before = current["metadata"].get("generation")
        except ApiException as exc:
            if exc.status != 404:
                raise
            before = None
        applied = api.patch_namespaced_custom_object(
            *args, body=json.loads(json.dumps(body)), field_manager=FIELD_MANAGER, force=True,
            field_validation="Strict",  # an unknown field is an error, never silently dropped
            _content_type="application/apply-patch+yaml",
        )
        # The client decodes no body for 201 Created (the apply that creates): read it back.
        after = cast(dict[str, Any], applied or api.get_namespaced_custom_object(*args))
    except ApiException as exc:
        raise DeployError(_api_error(exc, meta)) from exc
    finally:
        api_client.close()
    generation = after["metadata"].get("generation")
    if before is None:
        return generation, "created"
    return generation, "unchanged" if generation == before else "updated"


def _api_error(exc: Any, meta: dict[str, Any]) -> str:
    from kflow.submit import api_error

    return api_error(exc, f"flow {meta['name']} in namespace {meta['namespace']}",
                     action="write", plural=api_types.FLOW_PLURAL, hints={
                         404: "the cluster does not know Flow resources ({message}): install "
                              "kflow's CRDs first: `kubectl apply -f crds/`"})


def deploy(
    flow_cls: type[FlowSpec],
    graph: FlowGraph,
    package: packaging.CodePackage,
    *,
    namespace: str | None = None,
    image: str | None = None,
    dry_run: bool = False,
    settings: config.KflowConfig | None = None,
) -> DeployResult:
    """Upload the package (unless there) and apply the Flow; or just build it on dry run."""
    settings = settings or config.load()
    namespace = namespace or settings.namespace
    s3 = settings.s3 if dry_run else settings.require_s3()
    key = packaging.package_key(package.sha256)
    url = f"s3://{s3.bucket}/{key}"
    body = manifest.flow_manifest(flow_cls, graph, package, package_url=url,
                                  image=image or settings.image, namespace=namespace,
                                  username=config.local_user())
    if dry_run:
        return DeployResult(body["metadata"]["name"], namespace, url, package.sha256, False,
                            None, "", body, dry_run=True)
    url, uploaded = upload_package(s3, package)
    generation, outcome = apply_flow(settings, body)
    return DeployResult(body["metadata"]["name"], namespace, url, package.sha256, uploaded,
                        generation, outcome, body)
