"""The decorator object model shared by step and flow decorators (pure).

Owns: `Attr` (one attribute's default, checker and whether kflow uses it),
`Decorator` (name, explicitly set `attributes`, `defaults`, `lineno`),
and its two kinds `StepDecorator` / `FlowDecorator`. A decorator object
is a *value*: built from the attributes the user wrote, validated once,
never changed afterwards. Applying decorators to functions and classes is
`kflow.decorators`' job; the concrete decorators live in
`kflow.step_decorators` and `kflow.flow_decorators`.

The one rule that matters downstream: `attributes` holds only what the user
set (``None`` counts as not set). A value the user did not set is *unset*,
never a default that silently wins a comparison (Metaflow's #2464).
Read a value with its default through `get()`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from kflow._attributes import Checker, as_is
from kflow._location import Location
from kflow.exceptions import InvalidDecoratorException

__all__ = ["Attr", "Decorator", "FlowDecorator", "StepDecorator"]


@dataclass(frozen=True)
class Attr:
    """One decorator attribute: its default, how values are checked, whether kflow uses it."""

    default: Any = None
    check: Checker = as_is
    used: bool = True  # False: accepted so Metaflow flows migrate, then ignored


class Decorator:
    """A decorator as written by the user, validated.

    Attributes
    ----------
    name:
        The decorator's name without ``@`` (``"retry"``).
    attributes:
        The attributes the user set explicitly, checked and normalised.
    lineno:
        The line of the ``@decorator`` in the flow file (0 when unknown).
    file:
        The flow file, when known.
    """

    name: ClassVar[str] = ""
    ATTRIBUTES: ClassVar[Mapping[str, Attr]] = {}

    def __init__(
        self,
        attributes: Mapping[str, Any] | None = None,
        *,
        lineno: int = 0,
        where: Location | None = None,
        step_name: str | None = None,
    ) -> None:
        self.lineno = lineno
        self.file = where.file if where else None
        self._where = where or Location()
        self._step_name = step_name
        checked: dict[str, Any] = {}
        for key, value in (attributes or {}).items():
            if key not in self.ATTRIBUTES:
                raise self.error(
                    f"@{self.name} has no attribute '{key}'",
                    hint=f"Valid attributes of @{self.name}: {', '.join(sorted(self.ATTRIBUTES))}.",
                )
            if value is None:
                continue
            try:
                checked[key] = self.ATTRIBUTES[key].check(value)
            except ValueError as exc:
                raise self.error(f"@{self.name}: {key}={value!r} {exc}") from None
        self.attributes: dict[str, Any] = checked
        try:
            self._check()
        except ValueError as exc:
            raise self.error(f"@{self.name}: {exc}") from None

    # -- for subclasses -------------------------------------------------------------

    def _check(self) -> None:
        """Cross-attribute rules; raise ``ValueError("...")`` to reject."""

    # -- reading ----------------------------------------------------------------------

    @property
    def defaults(self) -> dict[str, Any]:
        """Every attribute's default (``None`` for unset resources)."""
        return {key: copy.deepcopy(attr.default) for key, attr in self.ATTRIBUTES.items()}

    def get(self, key: str) -> Any:
        """The value set by the user, else the default."""
        if key not in self.ATTRIBUTES:
            raise KeyError(f"@{self.name} has no attribute {key!r}")
        if key in self.attributes:
            return self.attributes[key]
        return copy.deepcopy(self.ATTRIBUTES[key].default)

    def is_set(self, key: str) -> bool:
        """Whether the user set `key` explicitly."""
        return key in self.attributes

    def ignored_attributes(self) -> list[str]:
        """Attributes the user set that kflow accepts but does not use (AWS-only ones)."""
        return sorted(key for key in self.attributes if not self.ATTRIBUTES[key].used)

    def error(self, message: str, hint: str | None = None) -> InvalidDecoratorException:
        """An `InvalidDecoratorException` located at this decorator's step or class."""
        return InvalidDecoratorException(
            message,
            file=self._where.file,
            line=self._where.line or self.lineno or None,
            step=self._step_name,
            hint=hint,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decorator):
            return NotImplemented
        return (self.name, self.attributes) == (other.name, other.attributes)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        attrs = ", ".join(f"{k}={v!r}" for k, v in sorted(self.attributes.items()))
        return f"@{self.name}({attrs})"


class StepDecorator(Decorator):
    """A decorator placed above ``@step``; `step_name` is the step it decorates."""

    @property
    def step_name(self) -> str | None:
        """The decorated step's name (None for a decorator built outside a flow)."""
        return self._step_name


class FlowDecorator(Decorator):
    """A decorator placed above the FlowSpec subclass (``@schedule``, ``@project``, ...)."""
