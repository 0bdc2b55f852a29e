"""Deterministic names and labels of the objects the operator creates (pure).

Owns: the pod name of a task attempt (`pod_name`), the run id handed to the runner
(`run_id`), label values (`label_value`), the labels of a step pod (`pod_labels`)
and the selector of a run's pods (`run_selector`). Everything else derives names from
here, so a restarted operator computes the same name for the same attempt and a 409
on create means "already there" (DESIGN.md, rule 2).

Pod names are ``<run>-<step>-<task>-<attempt>`` (step ``_`` → ``-``, task ``.`` → ``-``).
That form is kept as is only when it is *lossless*: the run a DNS-1123 label, the step
without ``_``, the task a single index, and at most 63 characters. Then the name parses
back from the right (attempt, task, step are single segments without ``-``), so two
such names never collide. Otherwise the readable part is cut to fit and a 10-letter
hash of the exact identity is appended; the hash is letters only, so it never looks
like the all-digit attempt segment of a lossless name.

Imports nothing but the standard library and `kflow.api_types`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from kflow import api_types

__all__ = [
    "ANNOTATION_RUN_ID",
    "ANNOTATION_STEP",
    "ANNOTATION_TASK",
    "DNS_LABEL_MAX",
    "LABEL_VALUE_MAX",
    "derived_name",
    "is_dns_label",
    "is_label_value",
    "label_value",
    "pod_labels",
    "pod_name",
    "run_selector",
]

DNS_LABEL_MAX: Final = 63
LABEL_VALUE_MAX: Final = 63
HASH_LENGTH: Final = 10          # letters a-z: 26**10 ≈ 2**47

# The exact step / task / run id of a pod. Label values are cut and hashed when they
# do not fit (a deep foreach's task id, a step name ending in "_"); these do not.
ANNOTATION_STEP: Final = "kflow.dev/step"
ANNOTATION_TASK: Final = "kflow.dev/task"
ANNOTATION_RUN_ID: Final = "kflow.dev/run-id"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LOSSLESS_STEP = re.compile(r"^[a-z][a-z0-9]*$")
_SINGLE_INDEX = re.compile(r"^[0-9]+$")


def is_dns_label(text: str) -> bool:
    """True for a DNS-1123 label (pod names, FlowRun names): ``[a-z0-9-]``, ≤ 63."""
    return len(text) <= DNS_LABEL_MAX and bool(_DNS_LABEL.match(text))


def is_label_value(text: str) -> bool:
    """True for a valid label value (may be empty), ≤ 63 characters."""
    return len(text) <= LABEL_VALUE_MAX and bool(_LABEL_VALUE.match(text))


def _hash(*parts: str) -> str:
    """`HASH_LENGTH` lowercase letters from the sha256 of the parts (NUL-separated)."""
    number = int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest(), "big")
    letters = []
    for _ in range(HASH_LENGTH):
        number, digit = divmod(number, 26)
        letters.append(chr(ord("a") + digit))
    return "".join(letters)


def _dns_part(text: str) -> str:
    """`text` lowercased with every character outside ``[a-z0-9-]`` made a ``-``."""
    return re.sub(r"[^a-z0-9-]", "-", text.lower())


def pod_name(run: str, step: str, task: str, attempt: int) -> str:
    """The pod of one task attempt: ``<run>-<step>-<task>-<attempt>`` as a DNS-1123 label.

    `run` is the FlowRun's name, `task` the foreach index path ("0", "3", "3.1").
    Shortened with a hash of the exact identity when lossy or longer than 63.
    """
    readable = f"{_dns_part(run)}-{_dns_part(step)}-{_dns_part(task)}-{attempt}"
    lossless = (is_dns_label(run) and bool(_LOSSLESS_STEP.match(step))
                and bool(_SINGLE_INDEX.match(task)) and attempt >= 0)
    if lossless and len(readable) <= DNS_LABEL_MAX:
        return readable
    suffix = _hash("pod", run, step, task, str(attempt))
    prefix = re.sub(r"-+", "-", readable)[:DNS_LABEL_MAX - HASH_LENGTH - 1].strip("-")
    return f"{prefix}-{suffix}" if prefix else suffix


def derived_name(owner: str, suffix: str, kind: str) -> str:
    """``<owner>-<suffix>`` (a FlowRun the operator starts for Flow `owner`: scheduled,
    triggered) as a DNS-1123 label; when longer than 63 characters (or not a label) the
    owner part is cut and a hash of the exact (`kind`, owner, suffix) goes before the
    suffix, so distinct identities keep distinct names."""
    readable = f"{_dns_part(owner)}-{_dns_part(suffix)}"
    if is_dns_label(readable) and is_dns_label(owner):
        return readable
    tail = f"{_hash(kind, owner, suffix)}-{_dns_part(suffix)}"[:DNS_LABEL_MAX].strip("-")
    room = DNS_LABEL_MAX - len(tail) - 1
    head = re.sub(r"-+", "-", _dns_part(owner))[:max(room, 0)].strip("-")
    return f"{head}-{tail}" if head else tail


def label_value(text: str) -> str:
    """`text` if it is a valid label value, else a valid one ending in a hash of it."""
    if is_label_value(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:LABEL_VALUE_MAX - HASH_LENGTH - 1]
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)
    suffix = _hash("label", text)
    return f"{cleaned}-{suffix}" if cleaned else suffix


def pod_labels(flow: str, run: str, step: str, task: str, attempt: int) -> dict[str, str]:
    """The labels of a step pod: ``app.kubernetes.io/*`` plus ``kflow.dev/{flow,run,step,
    task,attempt}`` (values passed through `label_value`)."""
    labels = api_types.common_labels(name="kflow", instance=label_value(run),
                                     component=api_types.COMPONENT_STEP)
    labels.update({
        api_types.LABEL_FLOW: label_value(flow),
        api_types.LABEL_RUN: label_value(run),
        api_types.LABEL_STEP: label_value(step),
        api_types.LABEL_TASK: label_value(task),
        api_types.LABEL_ATTEMPT: str(attempt),
    })
    return labels


def run_selector(run: str) -> str:
    """The label selector of the step pods of the FlowRun named `run`.

    Pods of an older FlowRun of the same name match too until they are garbage
    collected: compare the controller ownerReference's uid (`observe.owner_uid`).
    """
    return (f"{api_types.LABEL_APP_MANAGED_BY}={api_types.MANAGED_BY},"
            f"{api_types.LABEL_APP_COMPONENT}={api_types.COMPONENT_STEP},"
            f"{api_types.LABEL_RUN}={label_value(run)}")
