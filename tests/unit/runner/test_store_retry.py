"""How long a task keeps retrying its store (kflow.runner.execute._retry_policy)."""

from __future__ import annotations

import pytest

from kflow.runner.execute import _retry_policy
from kflow.runner.exitcodes import UsageError
from kflow.store import RetryPolicy


def test_a_task_retries_its_store_for_a_minute_by_default() -> None:
    # As kflow.runner documents it: a store restart costs no attempt.
    assert _retry_policy({}) == RetryPolicy.until(60.0)


def test_the_environment_sets_how_long() -> None:
    assert _retry_policy({"KFLOW_STORE_RETRY_SECONDS": "15"}) == RetryPolicy.until(15.0)
    with pytest.raises(UsageError, match=r"KFLOW_STORE_RETRY_SECONDS='soon' is not a number"):
        _retry_policy({"KFLOW_STORE_RETRY_SECONDS": "soon"})
