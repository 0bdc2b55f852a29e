"""kflow: Metaflow-style ML flows on Kubernetes.

The flow-authoring API is added by later work; for now the package holds the
embedded local cluster (`kflow.cluster`) and the `kflow` command line.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
