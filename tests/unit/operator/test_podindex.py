"""The pod index: watch events, LISTs, resyncs and our own creates, in any order."""

from __future__ import annotations

from typing import Any

from kflow_operator.podindex import PodIndex

KEY = ("ml", "run-1")


def pod(name: str, version: int | None, phase: str = "Pending",
        run: str = "run-1") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "ml", "ownerReferences": [
        {"kind": "FlowRun", "name": run, "uid": "u1", "controller": True}]}
    if version is not None:
        metadata["resourceVersion"] = str(version)
    return {"metadata": metadata, "status": {"phase": phase}}


def phases(pods: list[dict[str, Any]] | None) -> dict[str, str]:
    assert pods is not None
    return {p["metadata"]["name"]: p["status"]["phase"] for p in pods}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_run_is_listed_once_then_follows_its_watch_events() -> None:
    index = PodIndex()
    assert index.pods(KEY) is None                      # never listed: list it
    since = index.mark()
    assert phases(index.listed(KEY, [pod("a", 10)], since)) == {"a": "Pending"}
    assert index.observe(pod("a", 12, "Running")) == KEY
    index.observe(pod("b", 13))
    assert phases(index.pods(KEY)) == {"a": "Running", "b": "Pending"}
    index.observe(pod("a", 11, "Pending"))              # older, arriving late: ignored
    assert phases(index.pods(KEY))["a"] == "Running"
    index.observe(pod("b", 14), deleted=True)
    index.observe(pod("b", 13))                         # older than its deletion
    assert phases(index.pods(KEY)) == {"a": "Running"}
    assert index.observe({"metadata": {"name": "x", "namespace": "ml"}}) is None


def test_a_list_keeps_what_the_watch_changed_while_it_was_asked_for() -> None:
    index = PodIndex()
    index.observe(pod("gone", 5))
    since = index.mark()
    index.observe(pod("a", 20, "Succeeded"))            # events during the LIST
    index.observe(pod("new", 21))
    index.observe(pod("old", 22), deleted=True)
    listed = [pod("a", 15, "Running"), pod("old", 9)]  # the LIST's (older) view
    assert phases(index.listed(KEY, listed, since)) == {"a": "Succeeded", "new": "Pending"}
    # "gone" (seen before the LIST, not in it) was deleted meanwhile: dropped.


def test_runs_are_listed_again_after_the_resync_period_or_when_asked() -> None:
    clock = Clock()
    index = PodIndex(clock=clock, resync_seconds=60)
    index.listed(KEY, [pod("a", 1)], index.mark())
    clock.now = 59
    assert index.pods(KEY) is not None
    clock.now = 61
    assert index.pods(KEY) is None
    index.listed(KEY, [pod("a", 1)], index.mark())
    index.invalidate(KEY)
    assert index.pods(KEY) is None


def test_our_creates_are_known_at_once_and_replaced_by_the_servers_copies() -> None:
    index = PodIndex()
    index.listed(KEY, [], index.mark())
    index.created(pod("a", None))
    assert phases(index.pods(KEY)) == {"a": "Pending"}
    index.observe(pod("a", 30, "Running"))
    index.created(pod("a", None))                       # a repeated create changes nothing
    assert phases(index.pods(KEY)) == {"a": "Running"}
    index.forget(KEY)
    assert index.pods(KEY) is None
