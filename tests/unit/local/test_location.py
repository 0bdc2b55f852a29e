"""Where local runs live (kflow.local.location)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kflow.local.location import (
    check_run_id,
    find_store_dir,
    local_namespace,
    new_run_id,
    store_dir,
)


def test_the_environment_wins(tmp_path: Path) -> None:
    assert store_dir({"KFLOW_STORE_DIR": str(tmp_path / "s")}, Path("/x")) == tmp_path / "s"


def test_the_nearest_store_above_is_found(tmp_path: Path) -> None:
    (tmp_path / ".kflow" / "store").mkdir(parents=True)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_store_dir(deep) == tmp_path / ".kflow" / "store"
    assert store_dir({}, deep) == tmp_path / ".kflow" / "store"


def test_else_one_in_the_current_directory(tmp_path: Path) -> None:
    assert store_dir({}, tmp_path, is_dir=lambda path: False) == tmp_path / ".kflow" / "store"


def test_namespace() -> None:
    assert local_namespace(None, {}) == "local"
    assert local_namespace(None, {"KFLOW_NAMESPACE": "ml"}) == "ml"
    assert local_namespace("mine", {"KFLOW_NAMESPACE": "ml"}) == "mine"


def test_run_ids_sort_by_start_and_are_valid() -> None:
    early = new_run_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "abcdef")
    assert early == "local-20260102030405-abcdef"
    assert early < new_run_id(datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC), "000000")
    assert re.match(r"^local-\d{14}-[0-9a-f]{6}$", new_run_id())
    assert check_run_id(early) == early


@pytest.mark.parametrize("bad", ["", "a/b", ".hidden", "x" * 300, "sp ace"])
def test_bad_run_ids_are_refused_with_what_to_use(bad: str) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        check_run_id(bad)
