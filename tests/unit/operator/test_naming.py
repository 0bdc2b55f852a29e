"""Pod names, label values, run ids and selectors: validity and uniqueness (property tests)."""

from __future__ import annotations

import random
import re

import pytest

from kflow import api_types
from kflow_operator import naming

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def _random_run(rng: random.Random) -> str:
    alphabet = "abc-0123"
    length = rng.choice([1, 2, 3, 5, 20, 40, 63])
    body = "".join(rng.choice(alphabet) for _ in range(length))
    return ("a" + body)[:63].rstrip("-") or "a"


def _random_step(rng: random.Random) -> str:
    length = rng.choice([1, 2, 3, 10, 40, 63])
    return ("s" + "".join(rng.choice("ab_1") for _ in range(length)))[:63]


def _random_task(rng: random.Random) -> str:
    depth = rng.choice([1, 1, 2, 3, 8])
    return ".".join(str(rng.choice([0, 1, 2, 10, 11, 123, 9999])) for _ in range(depth))


def test_readable_name_when_it_fits() -> None:
    assert naming.pod_name("train-flow-20261129-1", "start", "0", 0) == \
        "train-flow-20261129-1-start-0-0"
    assert naming.pod_name("r", "train", "3", 2) == "r-train-3-2"


def test_underscores_and_nested_tasks_are_hashed_but_stay_readable() -> None:
    name = naming.pod_name("run-1", "train_model", "3.1", 0)
    assert name.startswith("run-1-train-model-3-1-0-")
    assert DNS_LABEL.match(name) and len(name) <= 63


def test_ambiguous_readable_forms_do_not_collide() -> None:
    # run "x" + step "a_b" and run "x-a" + step "b" read the same: "x-a-b-0-0".
    assert naming.pod_name("x", "a_b", "0", 0) != naming.pod_name("x-a", "b", "0", 0)
    # step "s_3" task "1" vs step "s" task "3.1"
    assert naming.pod_name("x", "s_3", "1", 0) != naming.pod_name("x", "s", "3.1", 0)


def test_long_names_are_cut_with_a_hash() -> None:
    run = "a" * 63
    name = naming.pod_name(run, "train", "0", 0)
    assert len(name) <= 63 and DNS_LABEL.match(name)
    assert name != naming.pod_name(run, "train", "0", 1)
    assert name == naming.pod_name(run, "train", "0", 0)       # deterministic


def test_invalid_inputs_still_give_valid_names() -> None:
    for run, step in (("UPPER", "x"), ("-a-", "_"), ("", "s"), ("a.b", "s")):
        name = naming.pod_name(run, step, "0", 0)
        assert DNS_LABEL.match(name) and len(name) <= 63, name


def test_property_names_are_valid_and_unique() -> None:
    rng = random.Random(20261129)
    identities = set()
    for _ in range(4000):
        identities.add((_random_run(rng), _random_step(rng), _random_task(rng),
                        rng.choice([0, 1, 2, 3, 4, 10])))
    # plus deliberately confusable neighbours
    for run in ("x", "x-a", "x-a-b"):
        for step in ("a", "a_b", "b", "b_0", "a_b_0"):
            for task in ("0", "0.0", "1", "0.1"):
                for attempt in (0, 1):
                    identities.add((run, step, task, attempt))
    names: dict[str, tuple[str, str, str, int]] = {}
    for identity in identities:
        name = naming.pod_name(*identity)
        assert len(name) <= 63 and DNS_LABEL.match(name), (identity, name)
        assert names.setdefault(name, identity) == identity, (name, identity, names[name])


@pytest.mark.parametrize("value", ["3.1", "train", "a" * 63, "0"])
def test_valid_label_values_pass_through(value: str) -> None:
    assert naming.label_value(value) == value


@pytest.mark.parametrize("value", ["a" * 64, "train_", "_x", "1." * 40, "a b/c"])
def test_invalid_label_values_are_hashed(value: str) -> None:
    result = naming.label_value(value)
    assert len(result) <= 63 and LABEL_VALUE.match(result) and result != value


def test_property_label_values_valid_and_unique() -> None:
    rng = random.Random(7)
    values = {_random_task(rng) * rng.choice([1, 5, 20]) for _ in range(3000)}
    out: dict[str, str] = {}
    for value in values:
        label = naming.label_value(value)
        assert LABEL_VALUE.match(label) and len(label) <= 63
        assert out.setdefault(label, value) == value


def test_pod_labels() -> None:
    labels = naming.pod_labels("train-flow", "train-flow-1", "train", "3.1", 2)
    assert labels == {
        "app.kubernetes.io/part-of": "kflow",
        "app.kubernetes.io/managed-by": "kflow",
        "app.kubernetes.io/name": "kflow",
        "app.kubernetes.io/instance": "train-flow-1",
        "app.kubernetes.io/component": "step",
        "kflow.dev/flow": "train-flow",
        "kflow.dev/run": "train-flow-1",
        "kflow.dev/step": "train",
        "kflow.dev/task": "3.1",
        "kflow.dev/attempt": "2",
    }
    deep = naming.pod_labels("f", "r", "s", ".".join(["1234"] * 20), 0)
    assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in deep.values())


def test_run_id_is_name_and_uid_prefix() -> None:
    run = {"metadata": {"name": "train-flow-1", "uid": "0f2c9a1e-77aa-4b1e-9c33-5d1e2f3a4b5c"}}
    assert api_types.run_id(run) == "train-flow-1-0f2c9a1e"
    with pytest.raises(ValueError, match="uid"):
        api_types.run_id({"metadata": {"name": "x"}})


def test_run_selector() -> None:
    assert naming.run_selector("train-flow-1") == (
        "app.kubernetes.io/managed-by=kflow,app.kubernetes.io/component=step,"
        f"{api_types.LABEL_RUN}=train-flow-1")
