"""The public surface of `kflow` is exactly what `__all__` lists (httpx's test)."""

from __future__ import annotations

import kflow


def test_all_lists_the_public_sdk_sorted() -> None:
    assert kflow.__all__ == sorted([
        "FlowSpec", "JSONType", "KflowException", "Parameter", "__version__", "batch",
        "catch", "current", "environment", "kubernetes", "project", "resources", "retry",
        "schedule", "step", "timeout", "trigger_on_finish",
        # the client API (imported from kflow.client on first use)
        "DataArtifact", "Flow", "Run", "Step", "Task", "default_namespace", "get_namespace",
        "namespace",
    ])


def test_every_listed_name_exists() -> None:
    for name in kflow.__all__:
        assert hasattr(kflow, name), name
