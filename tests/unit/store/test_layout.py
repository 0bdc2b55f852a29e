"""The key scheme: distinct inputs give distinct keys; prefixes; validation."""

from __future__ import annotations

import itertools
import random

import pytest

from kflow.packaging import package_key
from kflow.store import AttemptKey, StoreLayout, TaskKey

SHA = "ab" + "0" * 62


def test_documented_keys() -> None:
    layout = StoreLayout()
    key = TaskKey("default", "TrainFlow", "train-1a2b3c4d", "fit", "3.1").attempt(2)
    base = "runs/default/TrainFlow/train-1a2b3c4d/fit/3.1/2/"
    assert layout.blob(SHA) == f"data/ab/{SHA}"
    assert layout.code_package(SHA) == f"code/{SHA}.tar.gz"
    assert layout.meta(key) == base + "meta.json"
    assert layout.artifacts(key) == base + "artifacts.json"
    assert layout.done(key) == base + "DONE"
    assert layout.log_segment(key, "stdout", 1) == base + "logs/stdout/000001"
    assert layout.log_segment(key, "stderr", 1234567) == base + "logs/stderr/1234567"


def test_prefix_applies_to_every_key() -> None:
    layout = StoreLayout.from_prefix("/team/kflow/")
    assert layout.prefix == "team/kflow/"
    key = TaskKey("ns", "F", "r", "s").attempt(0)
    for k in (layout.blob(SHA), layout.code_package(SHA), layout.meta(key),
              layout.done(key), layout.log_prefix(key, "stdout")):
        assert k.startswith("team/kflow/")
    assert StoreLayout.from_prefix("").prefix == ""
    with pytest.raises(ValueError):
        StoreLayout("no-trailing-slash")
    with pytest.raises(ValueError):
        StoreLayout("../up/")


def test_package_key_delegates_to_layout() -> None:
    assert package_key(SHA) == StoreLayout().code_package(SHA)
    with pytest.raises(ValueError):
        package_key("not-a-sha")


NAMES = ["a", "b", "a.b", "a-b", "a_b", "ab", "A", "0", "x" * 40]
TASKS = ["0", "1", "10", "1.0", "0.1", "1.10", "11.0", "3.1.2"]


def all_keys(layout: StoreLayout, key: AttemptKey) -> list[str]:
    return [layout.meta(key), layout.artifacts(key), layout.done(key),
            layout.log_segment(key, "stdout", 1), layout.log_segment(key, "stderr", 1)]


def test_distinct_inputs_give_distinct_keys() -> None:
    rng = random.Random(42)
    layout = StoreLayout()
    combos = set()
    for _ in range(3000):
        combos.add((rng.choice(NAMES), rng.choice(NAMES), rng.choice(NAMES),
                    rng.choice(NAMES), rng.choice(TASKS), rng.randrange(4)))
    seen: dict[str, tuple[object, ...]] = {}
    for combo in combos:
        *parts, task, attempt = combo
        key = TaskKey(*parts, task=task).attempt(attempt)  # type: ignore[arg-type, misc]
        for k in all_keys(layout, key):
            assert seen.setdefault(k, combo) == combo, k
    # and no attempt's directory contains another attempt's keys
    prefixes = {layout.attempt_prefix(
        TaskKey(*c[:4], task=c[4]).attempt(c[5])) for c in combos}  # type: ignore[arg-type, misc]
    for a, b in itertools.combinations(sorted(prefixes)[:400], 2):
        assert not b.startswith(a)


def test_task_prefixes_do_not_nest() -> None:
    layout = StoreLayout()
    prefixes = [layout.task_prefix(TaskKey("n", "f", "r", "s", t)) for t in TASKS]
    for a, b in itertools.permutations(prefixes, 2):
        assert not b.startswith(a)


@pytest.mark.parametrize("bad", ["", "a/b", "..", ".", ".hidden", "a b", "é", "-x", "x" * 300])
def test_unsafe_segments_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        TaskKey(bad, "f", "r", "s")
    with pytest.raises(ValueError):
        TaskKey("n", "f", bad, "s")


@pytest.mark.parametrize("bad", ["", "01", "1.", ".1", "a", "1..2", "-1", "1/2"])
def test_task_must_be_an_index_path(bad: str) -> None:
    with pytest.raises(ValueError):
        TaskKey("n", "f", "r", "s", bad)


@pytest.mark.parametrize("bad", [-1, True, 1.0, "0"])
def test_attempt_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(ValueError):
        AttemptKey(TaskKey("n", "f", "r", "s"), bad)  # type: ignore[arg-type]


def test_bad_sha_and_stream() -> None:
    layout = StoreLayout()
    with pytest.raises(ValueError):
        layout.blob("AB" + "0" * 62)
    with pytest.raises(ValueError):
        layout.log_prefix(TaskKey("n", "f", "r", "s").attempt(0), "stdin")
