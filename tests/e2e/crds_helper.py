"""Install kflow's CRDs into a test cluster (idempotent) and load the example manifests.

Any e2e module that needs `Flow`/`FlowRun` calls `install_crds(cluster)` (or uses a
fixture built on it): it server-side-applies `crds/*.yaml`, so several modules (or a
re-used `KFLOW_TEST_CLUSTER_DIR` cluster) can call it, and waits until both CRDs are
Established and served.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Protocol

import yaml

from kflow import api_types

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
CRD_FILES = (CRD_DIR / "kflow.dev_flows.yaml", CRD_DIR / "kflow.dev_flowruns.yaml")
EXAMPLES = ROOT / "examples"
CRD_NAMES = (f"{api_types.FLOW_PLURAL}.{api_types.GROUP}",
             f"{api_types.FLOWRUN_PLURAL}.{api_types.GROUP}")

_installed: set[str] = set()  # kubeconfig paths already done in this session


class _Kubectl(Protocol):
    kubeconfig: Path

    def kubectl(self, *args: str, timeout: float = 60) -> Any: ...


def install_crds(cluster: _Kubectl) -> None:
    """Apply both CRDs and wait until they are Established (a no-op the second time)."""
    key = str(cluster.kubeconfig)
    if key in _installed:
        return
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager=kflow-tests"]
    for path in CRD_FILES:
        args += ["-f", str(path)]
    done = cluster.kubectl(*args)
    assert done.returncode == 0, f"applying the CRDs failed:\n{done.stderr}"
    waited = cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                             *(f"crd/{name}" for name in CRD_NAMES), timeout=90)
    assert waited.returncode == 0, f"CRDs not Established:\n{waited.stderr}"
    # Established can precede discovery by a moment; kubectl needs the short names.
    for _ in range(50):
        if cluster.kubectl("get", "fl,fr", "-A", "-o", "name").returncode == 0:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("kubectl does not see the kflow resources after install")
    _installed.add(key)


def load_example(name: str) -> dict[str, Any]:
    """A fresh copy of `examples/<name>` (one YAML document)."""
    return copy.deepcopy(yaml.safe_load((EXAMPLES / name).read_text()))
