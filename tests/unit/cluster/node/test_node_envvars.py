"""kubelet-style env resolution and `$(VAR)` expansion."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from kflow.cluster.node.envvars import EnvError, PodFacts, expand, expand_argv, resolve_env

FACTS = PodFacts("127.0.0.1", "127.0.0.1", Decimal(4), Decimal(8 * 2**30))


class FakeLookups:
    def __init__(self) -> None:
        self.maps: dict[str, dict[str, str]] = {"cfg": {"A": "1", "B": "two", "bad=key": "x"}}
        self.secrets: dict[str, dict[str, str]] = {"sec": {"password": "pw"}}

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.maps.get(name)

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.secrets.get(name)


POD: dict[str, Any] = {
    "metadata": {
        "name": "p",
        "namespace": "ns",
        "uid": "u-1",
        "labels": {"team": "ml"},
        "annotations": {"note": "hi"},
    },
    "spec": {"nodeName": "n1", "serviceAccountName": "runner"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("x-$(A)-$(B)-y", "x-1-two-y"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$1"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(A", "$(A"),
        ("$A", "$A"),
        ("cost $", "cost $"),
        ("$$", "$"),
        ("$()", "$()"),
    ],
)
def test_expand_like_kubernetes(text: str, expected: str) -> None:
    values = {"A": "1", "B": "two"}
    assert expand(text, values.get) == expected


def resolve(container: dict[str, Any], visible: dict[str, str] | None = None) -> dict[str, str]:
    return resolve_env(POD, container, FakeLookups(), FACTS, visible or {})


def test_values_refs_and_expansion_in_order() -> None:
    env = resolve(
        {
            "env": [
                {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                {
                    "name": "TEAM",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}},
                },
                {
                    "name": "NOTE",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}},
                },
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "B"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                {"name": "BOTH", "value": "$(NAME).$(NS) $(LATER) $(KUBE)"},
                {"name": "LATER", "value": "late"},
            ]
        },
        visible={"KUBE": "svc"},
    )
    assert env == {
        "NAME": "p",
        "NS": "ns",
        "UID": "u-1",
        "TEAM": "ml",
        "NOTE": "hi",
        "NODE": "n1",
        "SA": "runner",
        "IP": "127.0.0.1",
        "HOST": "127.0.0.1",
        "CM": "two",
        "PW": "pw",
        "BOTH": "p.ns $(LATER) svc",
        "LATER": "late",
    }


def test_env_from_with_prefix_and_override() -> None:
    env = resolve(
        {
            "envFrom": [
                {"prefix": "C_", "configMapRef": {"name": "cfg"}},
                {"secretRef": {"name": "sec"}},
                {"configMapRef": {"name": "absent", "optional": True}},
            ],
            "env": [{"name": "C_A", "value": "override"}],
        }
    )
    assert env == {"C_A": "override", "C_B": "two", "password": "pw"}


def test_optional_refs_are_skipped_and_required_ones_fail() -> None:
    optional = {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}}
    assert resolve({"env": [{"name": "X", "valueFrom": optional}]}) == {}
    missing_key = {"secretKeyRef": {"name": "sec", "key": "nope", "optional": True}}
    assert resolve({"env": [{"name": "X", "valueFrom": missing_key}]}) == {}
    with pytest.raises(EnvError, match='configmap "nope" not found'):
        resolve(
            {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}
        )
    with pytest.raises(EnvError, match="couldn't find key nope in Secret ns/sec"):
        resolve(
            {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "nope"}}}]}
        )
    with pytest.raises(EnvError, match='secret "gone" not found'):
        resolve({"envFrom": [{"secretRef": {"name": "gone"}}]})


def test_resource_field_refs() -> None:
    container = {
        "name": "main",
        "resources": {"limits": {"memory": "64Mi", "cpu": "1500m"}, "requests": {"cpu": "250m"}},
        "env": [
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
            {
                "name": "MEM_MI",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {
                "name": "REQ_M",
                "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
            },
            {"name": "REQ_MEM", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
        ],
    }
    env = resolve(container)
    assert env == {
        "MEM": str(64 * 2**20),
        "MEM_MI": "64",
        "CPU": "2",
        "REQ_M": "250",
        "REQ_MEM": str(64 * 2**20),
    }
    no_limits = {
        "env": [{"name": "M", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}]
    }
    assert resolve(no_limits) == {"M": str(8 * 2**30)}


def test_unsupported_field_path() -> None:
    with pytest.raises(EnvError, match="unsupported fieldRef"):
        resolve({"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]})


def test_expand_argv() -> None:
    env = {"N": "3", "OUT": "/tmp/o"}
    assert expand_argv(["--n=$(N)", "$(OUT)/x", "$$(N)", "$(NONE)"], env) == [
        "--n=3",
        "/tmp/o/x",
        "$(N)",
        "$(NONE)",
    ]
