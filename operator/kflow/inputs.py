"""A join's ``inputs`` and the rules of ``merge_artifacts`` (pure).

Owns: `Inputs` (iterable, indexable, ``inputs.<step>``), the
`ArtifactSource` protocol through which a flow object tells which artifacts
it holds and their content hash, its in-memory form `MemoryArtifacts`
(sha256 of the cloudpickled value), and `plan_merge`, which decides what a
merge copies or why it must fail. The artifact store (a later module)
provides a store-backed `ArtifactSource` whose hashes come from the store,
so merging never loads data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, overload

import cloudpickle

from kflow.exceptions import MissingInMergeArtifactsException, UnhandledInMergeArtifactsException

if TYPE_CHECKING:
    from kflow.flowspec import FlowSpec

__all__ = [
    "EPHEMERAL_ATTRIBUTES",
    "INTERNAL_ARTIFACTS",
    "ArtifactSource",
    "Inputs",
    "MemoryArtifacts",
    "artifact_sha",
    "plan_merge",
]

INTERNAL_ARTIFACTS = frozenset({
    "_transition", "_task_ok", "_success", "_exception", "_foreach_stack",
    "_foreach_num_splits", "_foreach_var", "_foreach_values", "_iteration_stack",
    "_current_step", "_graph_info", "_unbounded_foreach", "_control_mapper_tasks",
    "_control_task_is_mapper_zero", "_parallel_ubf_iter",
})
"""The runtime's own artifacts: never merged by `merge_artifacts`."""

EPHEMERAL_ATTRIBUTES = frozenset({"_parameter_values", "_artifact_source"})
"""Bookkeeping attributes of a flow object that are not artifacts at all."""


class ArtifactSource(Protocol):
    """What a task's artifacts are, by name and content hash."""

    def artifact_names(self) -> Iterable[str]:
        """Names of the artifacts the task holds."""
        ...

    def artifact_sha(self, name: str) -> str:
        """The content hash of one artifact (equal hashes = equal values)."""
        ...


def artifact_sha(value: Any) -> str:
    """sha256 of the cloudpickled value: the in-memory stand-in for the store's key."""
    return hashlib.sha256(cloudpickle.dumps(value)).hexdigest()


class MemoryArtifacts:
    """The artifacts of a flow object held in memory: its instance attributes."""

    def __init__(self, flow: object) -> None:
        self._flow = flow

    def artifact_names(self) -> list[str]:
        return [
            name
            for name in vars(self._flow)
            if not name.startswith("__") and name not in EPHEMERAL_ATTRIBUTES
        ]

    def artifact_sha(self, name: str) -> str:
        return artifact_sha(vars(self._flow)[name])


class Inputs(Sequence["FlowSpec"]):
    """The inputs of a join: one flow object per incoming task.

    Iterable and indexable (a foreach join's inputs are in split order), and
    ``inputs.train`` is the input coming from step ``train``.
    """

    def __init__(self, flows: Iterable[FlowSpec]) -> None:
        self._flows: list[FlowSpec] = list(flows)

    @overload
    def __getitem__(self, index: int) -> FlowSpec: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[FlowSpec]: ...

    def __getitem__(self, index: int | slice) -> FlowSpec | Sequence[FlowSpec]:
        return self._flows[index]

    def __len__(self) -> int:
        return len(self._flows)

    def __iter__(self) -> Iterator[FlowSpec]:
        return iter(self._flows)

    def __getattr__(self, name: str) -> FlowSpec:
        if name.startswith("_"):
            raise AttributeError(name)
        for flow in reversed(self._flows):
            if flow._current_step == name:
                return flow
        steps = sorted({str(flow._current_step) for flow in self._flows})
        raise AttributeError(
            f"inputs has no step '{name}'; this join's inputs come from: {', '.join(steps)}"
        )

    def __repr__(self) -> str:
        return f"Inputs({[flow._current_step for flow in self._flows]})"


def plan_merge(
    is_set: Callable[[str], bool],
    sources: Sequence[ArtifactSource],
    include: Collection[str] = (),
    exclude: Collection[str] = (),
    step: str | None = None,
) -> dict[str, int]:
    """Decide a merge: ``{artifact name: index of the input to take it from}``.

    Considers artifacts not already set on the join (`is_set`) and not
    internal; with `include` only those names, minus `exclude`. Raises
    `UnhandledInMergeArtifactsException` when inputs hold different values
    for a name, and `MissingInMergeArtifactsException` when an included name
    is on no input; in both cases nothing is merged.
    """
    chosen: dict[str, tuple[int, str]] = {}
    conflicts: set[str] = set()
    for index, source in enumerate(sources):
        for name in source.artifact_names():
            if include and name not in include:
                continue
            if name in exclude or name in INTERNAL_ARTIFACTS or is_set(name):
                continue
            sha = source.artifact_sha(name)
            first = chosen.setdefault(name, (index, sha))
            if first[1] != sha:
                conflicts.add(name)
    if conflicts:
        names = sorted(conflicts)
        raise UnhandledInMergeArtifactsException(
            f"cannot merge artifacts with different values on different inputs: "
            f"{', '.join(names)}",
            artifacts=names,
            step=step,
            hint="Set them explicitly (self.<name> = ...) before calling merge_artifacts, "
            "or leave them out with exclude=[...].",
        )
    missing = sorted(name for name in include if name not in chosen and not is_set(name))
    if missing:
        raise MissingInMergeArtifactsException(
            f"merge_artifacts(include=...) names artifacts that no input has: "
            f"{', '.join(missing)}",
            artifacts=missing,
            step=step,
            hint="Check the names, or set them on the join before merging.",
        )
    return {name: index for name, (index, _) in chosen.items()}
