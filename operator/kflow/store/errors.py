"""What can go wrong in the datastore, and what to catch.

Owns: the store's exception types. The hierarchy::

    KflowException                  (kflow.exceptions)
    └── StoreError                  anything the datastore reports
        ├── StoreUnavailable        the object store did not answer within the retry
        │                           budget (connection refused, 5xx, SlowDown, timeouts):
        │                           an *infrastructure* failure, not the user's
        ├── StoreNotConfigured      no backend configured in the environment
        ├── ObjectNotFound          a key that should exist does not (also a KeyError)
        ├── CorruptArtifact         stored bytes do not match their address or format
        └── UnpicklableArtifact     an artifact could not be serialized; names it and its type

Must not import anything from kflow except `kflow.exceptions`.
"""

from __future__ import annotations

from kflow.exceptions import KflowException

__all__ = [
    "CorruptArtifact",
    "ObjectNotFound",
    "StoreError",
    "StoreNotConfigured",
    "StoreUnavailable",
    "UnpicklableArtifact",
]


class StoreError(KflowException):
    """A datastore problem."""


class StoreUnavailable(StoreError):
    """The object store kept failing with transient errors until the retry budget ran out.

    The runner maps this to its "infrastructure failure" exit code, so the
    operator retries the task on the platform's budget, not the user's.
    """


class StoreNotConfigured(StoreError):
    """Neither a local directory nor an S3 endpoint is configured."""


class ObjectNotFound(StoreError, KeyError):
    """A key is missing from the object store."""

    def __init__(self, key: str, hint: str | None = None) -> None:
        super().__init__(f"object {key!r} not found in the datastore", hint=hint)
        self.key = key

    def __str__(self) -> str:  # KeyError would repr() the message
        return StoreError.__str__(self)


class CorruptArtifact(StoreError):
    """Stored bytes do not hash to their address, or are not in kflow's format."""


class UnpicklableArtifact(StoreError):
    """An artifact value could not be serialized with cloudpickle."""

    def __init__(self, name: str, type_name: str, reason: str, step: str | None = None) -> None:
        super().__init__(
            f"artifact {name!r} of type {type_name} cannot be pickled: {reason}",
            step=step,
            hint="Store a picklable value instead (e.g. convert it, or recreate the "
            "object in the next step); locks, sockets, open files, generators and "
            "live connections cannot be saved.",
        )
        self.name = name
        self.type_name = type_name
