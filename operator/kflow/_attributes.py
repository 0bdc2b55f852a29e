"""Checkers for decorator attribute values (internal, pure).

Owns: the small functions that turn a user-written attribute value into its
normal form or raise ``ValueError("must be ...")``. The decorator classes
pick one per attribute; the message is completed with the decorator, the
attribute and the step by `kflow.decorators`. Values arrive as Python
objects from source code or as strings (``--with retry:times=2``), so
numbers, booleans, lists and maps also accept their string spellings.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

Checker = Callable[[Any], Any]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


def as_is(value: Any) -> Any:
    """Accept anything (attributes kflow ignores, kept for Metaflow compatibility)."""
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"must be a number, not {value!r}") from None
    else:
        raise ValueError(f"must be a number, not {value!r}")
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"must be a finite number, not {value!r}")
    return number


def positive_number(value: Any) -> float:
    """A count of CPU cores: a number > 0, e.g. ``2``, ``0.5`` or ``"0.5"``."""
    number = _number(value)
    if number <= 0:
        raise ValueError(f"must be a number greater than 0, not {value!r}")
    return number


def positive_megabytes(value: Any) -> int:
    """A size in MB (memory, disk, shared memory): a number > 0, rounded up to whole MB."""
    number = _number(value)
    if number <= 0:
        raise ValueError(f"must be a positive number of MB, not {value!r}")
    return math.ceil(number)


def non_negative_int(value: Any) -> int:
    """A whole number >= 0 (``gpu``, retry ``times``, timeout parts)."""
    number = _number(value)
    if number < 0 or number != int(number):
        raise ValueError(f"must be a whole number >= 0, not {value!r}")
    return int(number)


def non_negative_number(value: Any) -> int | float:
    """A number >= 0, kept an int when whole (``minutes_between_retries``)."""
    number = _number(value)
    if number < 0:
        raise ValueError(f"must be a number >= 0, not {value!r}")
    return int(number) if number == int(number) else number


def port(value: Any) -> int:
    """A TCP port, 1-65535."""
    number = non_negative_int(value)
    if not 1 <= number <= 65535:
        raise ValueError(f"must be a port number between 1 and 65535, not {value!r}")
    return number


def boolean(value: Any) -> bool:
    """``True``/``False`` (or their usual string spellings)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"must be True or False, not {value!r}")


def text(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, not {value!r}")
    return value.strip()


def absolute_path(value: Any) -> str:
    """An absolute path in the container."""
    path = text(value)
    if not path.startswith("/"):
        raise ValueError(f"must be an absolute path (starting with '/'), not {value!r}")
    return path


def identifier(value: Any) -> str:
    """A Python attribute name (``@catch(var=...)``)."""
    if not isinstance(value, str) or not value.isidentifier() or keyword.iskeyword(value):
        raise ValueError(f"must be a valid attribute name, not {value!r}")
    if value.startswith("_"):
        raise ValueError(f"must not start with '_' (reserved for kflow), not {value!r}")
    return value


def choice(*options: str) -> Checker:
    """One of `options`, matched case-insensitively and returned as spelled in `options`."""
    by_lower = {option.lower(): option for option in options}

    def check(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in by_lower:
            return by_lower[value.strip().lower()]
        raise ValueError(f"must be one of {', '.join(options)}, not {value!r}")

    return check


def string_list(value: Any) -> list[str]:
    """A list of strings, or one comma-separated string (``"a,b"``)."""
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
        return [item for item in items if item]
    if isinstance(value, list | tuple) and all(isinstance(i, str) and i for i in value):
        return list(value)
    raise ValueError(f"must be a list of strings or a comma-separated string, not {value!r}")


def string_map(value: Any) -> dict[str, str]:
    """A mapping of strings to strings (numbers and booleans are written as strings)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a dict of strings, not {value!r}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"must have non-empty string keys, not {key!r}")
        if not isinstance(item, str | int | float | bool):
            raise ValueError(f"must have string values; {key!r} is {item!r}")
        result[key] = str(item).lower() if isinstance(item, bool) else str(item)
    return result


def key_value_map(value: Any) -> dict[str, str]:
    """A dict, or ``"k=v,k2=v2"`` (``node_selector``)."""
    if isinstance(value, str):
        result: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in value.split(","))):
            key, sep, item = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"must be 'key=value' pairs separated by commas, not {value!r}")
            result[key.strip()] = item.strip()
        return result
    return string_map(value)


def env_vars(value: Any) -> dict[str, str]:
    """Environment variables: names like ``MY_VAR``; values are stringified."""
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a dict of environment variables, not {value!r}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise ValueError(f"has an invalid environment variable name {key!r}")
        result[key] = str(item)
    return result


_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds",
                    "toleration_seconds"}


def tolerations(value: Any) -> list[dict[str, Any]]:
    """A list of Kubernetes toleration dicts (``key``, ``operator``, ``value``, ``effect``)."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"must be a list of toleration dicts, not {value!r}")
    result: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, Mapping):
            raise ValueError(f"must be a list of toleration dicts; {item!r} is not a dict")
        unknown = sorted(set(item) - _TOLERATION_KEYS)
        if unknown:
            raise ValueError(
                f"has a toleration with unknown keys {unknown}; valid keys are "
                "key, operator, value, effect, tolerationSeconds"
            )
        result.append(dict(item))
    return result


_SECURITY_CONTEXT_KEYS = {"privileged", "allow_privilege_escalation", "run_as_user",
                          "run_as_group", "run_as_non_root"}


def security_context(value: Any) -> dict[str, Any]:
    """Metaflow's security context keys: privileged, allow_privilege_escalation, run_as_*."""
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a dict, not {value!r}")
    unknown = sorted(set(value) - _SECURITY_CONTEXT_KEYS)
    if unknown:
        raise ValueError(
            f"has unknown keys {unknown}; valid keys are "
            + ", ".join(sorted(_SECURITY_CONTEXT_KEYS))
        )
    return dict(value)


def volume_claims(value: Any) -> dict[str, str]:
    """``{claim_name: mount_path}`` with absolute mount paths."""
    claims = string_map(value)
    for name, path in claims.items():
        if not path.startswith("/"):
            raise ValueError(f"must map each claim to an absolute mount path; {name!r} → {path!r}")
    return claims
