"""Kubernetes resource quantities ("500m", "64Mi", "1.5G", "2e3") as exact numbers.

Owns parsing only; pure, imports nothing outside the standard library.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")


def parse_quantity(text: str | int | float) -> Decimal:
    """Return the value of a quantity; raise ValueError when it is not one."""
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise ValueError(f"invalid quantity {text!r}")
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number + (exponent or ""))
    except InvalidOperation as exc:
        raise ValueError(f"invalid quantity {text!r}") from exc
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    return value * _DECIMAL[suffix or ""]


def ceil_div(value: Decimal, divisor: Decimal) -> int:
    """`value / divisor` rounded up, as the downward API does for resource fields."""
    if divisor <= 0:
        raise ValueError("divisor must be positive")
    return math.ceil(value / divisor)
