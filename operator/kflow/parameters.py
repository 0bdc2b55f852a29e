"""Flow parameters: ``alpha = Parameter("alpha", default=0.01)`` (pure apart from the env read).

Owns: `Parameter` (its type, default, parsing of command-line / environment
strings, its JSON spec for the Flow manifest), `JSONType`, the reserved
names, and `flow_parameters` / `check_parameters` over a flow class.

A `Parameter` is a descriptor on the flow class: read on the class it is
the `Parameter`; read on a flow object it is the value, resolved as
explicit value (set by the runner / CLI) > ``KFLOW_RUN_<NAME>`` environment
variable > default; assigning it raises. Callable (deploy-time) defaults,
`IncludeFile` and `Config` are not supported.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, overload

from kflow._location import caller_location
from kflow.exceptions import InvalidParameterException, ParameterValueException

if TYPE_CHECKING:
    from kflow.flowspec import FlowSpec

__all__ = [
    "RESERVED_PARAMETER_NAMES",
    "JSONType",
    "Parameter",
    "check_parameters",
    "flow_parameters",
]

RESERVED_PARAMETER_NAMES = frozenset({
    "params", "with", "tag", "namespace", "obj", "tags", "decospecs", "run-id-file",
    "max-num-splits", "max-workers", "max-log-size", "user-namespace", "run-id", "task-id",
    "runner-attribute-file",
})
"""Names the flow-file CLI uses itself (Metaflow's list); no parameter may take them."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


class _JSONType:
    """The type of a parameter holding JSON (``type=JSONType``): parsed with `json.loads`."""

    def __repr__(self) -> str:
        return "JSONType"


JSONType = _JSONType()

_KINDS: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool", JSONType: "json"}
_EXPECTED = {
    "str": "a string",
    "int": "a whole number (e.g. 3)",
    "float": "a number (e.g. 0.5)",
    "bool": "true or false",
    "json": "JSON (e.g. '{\"a\": 1}')",
}


def _infer_kind(default: Any) -> str | None:
    if default is None or isinstance(default, str):
        return "str"
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, dict | list):
        return "json"
    return None


class Parameter:
    """A value given when the run starts, read-only in every step.

    Parameters
    ----------
    name:
        The name on the command line (``--name``) and in the Flow manifest.
    default:
        Its value when none is given; also decides the type when `type` is not given.
    type:
        ``str``, ``int``, ``float``, ``bool`` or ``JSONType``.
    help:
        One line shown by ``--help`` and ``show``.
    required:
        The run refuses to start without a value (a default counts as one).
    show_default:
        Kept for Metaflow compatibility (help output).
    separator:
        String parameters only: split the value on it into a list of strings.
    """

    def __init__(
        self,
        name: str,
        default: Any = None,
        type: Any = None,  # Metaflow's keyword
        help: str | None = None,  # Metaflow's keyword
        required: bool | None = None,
        show_default: bool | None = None,
        separator: str | None = None,
    ) -> None:
        where = caller_location()
        self.file, self.line = where.file, where.line or None
        self.name = name
        if not isinstance(name, str) or not _NAME.match(name):
            raise self._error(
                f"Parameter name {name!r} is not valid",
                "Use letters, digits, '_' and '-', starting with a letter.",
            )
        if name.lower() in RESERVED_PARAMETER_NAMES:
            raise self._error(
                f"Parameter name '{name}' is reserved by the flow command line",
                "Choose another name; reserved: " + ", ".join(sorted(RESERVED_PARAMETER_NAMES)),
            )
        if callable(default):
            raise self._error(
                f"Parameter '{name}' has a function as default",
                "Deploy-time (callable) defaults are not supported by kflow; give a value.",
            )
        kind = _infer_kind(default) if type is None else _KINDS.get(type)
        if kind is None:
            shown = type if type is not None else f"{default!r} (the default)"
            raise self._error(
                f"Parameter '{name}' has an unsupported type {shown}",
                "Use str, int, float, bool or JSONType.",
            )
        self.kind: str = kind
        if separator is not None and (kind != "str" or not isinstance(separator, str)
                                      or not separator):
            raise self._error(
                f"Parameter '{name}' has separator={separator!r}",
                "A separator is a non-empty string and only works with type=str.",
            )
        self.separator = separator
        self.help = help or ""
        self.required = bool(required)
        self.show_default = show_default
        try:
            self.default: Any = None if default is None else self.coerce(default)
        except ParameterValueException as exc:
            raise self._error(f"The default of {exc.message}", exc.hint) from None

    def _error(self, message: str, hint: str | None) -> InvalidParameterException:
        return InvalidParameterException(message, file=self.file, line=self.line, hint=hint)

    # -- values -----------------------------------------------------------------------

    @property
    def env_var(self) -> str:
        """The environment variable that can give the value: ``KFLOW_RUN_<NAME>``."""
        return "KFLOW_RUN_" + self.name.upper().replace("-", "_")

    def parse(self, text: str) -> Any:
        """The typed value of a command-line or environment string."""
        try:
            if self.kind == "str":
                return text.split(self.separator) if self.separator else text
            if self.kind == "int":
                return int(text.strip())
            if self.kind == "float":
                return float(text.strip())
            if self.kind == "bool":
                lowered = text.strip().lower()
                if lowered in _TRUE | _FALSE:
                    return lowered in _TRUE
                raise ValueError(text)
            return json.loads(text)
        except ValueError:
            raise self._value_error(text) from None

    def coerce(self, value: Any) -> Any:
        """`value` as this parameter's type: strings are parsed, other values checked."""
        if isinstance(value, str) and not (self.kind == "str" and not self.separator):
            return self.parse(value)
        kind = self.kind
        if kind == "str" and self.separator and isinstance(value, list | tuple):
            if all(isinstance(item, str) for item in value):
                return list(value)
        elif kind == "json":
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                pass
            else:
                return value
        elif not isinstance(value, bool) or kind == "bool":
            accepted = {"str": str, "int": int, "float": int | float, "bool": bool}[kind]
            if isinstance(value, accepted):
                return float(value) if kind == "float" else value
        raise self._value_error(value)

    def _value_error(self, value: Any) -> ParameterValueException:
        return ParameterValueException(
            f"parameter '{self.name}' must be {_EXPECTED[self.kind]}, got {value!r}",
            hint=f"Pass e.g. --{self.name} VALUE or set {self.env_var}.",
        )

    def resolve(self, explicit: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
        """The value for a run: `explicit[name]` > environment variable > default."""
        if self.name in explicit:
            value = self.coerce(explicit[self.name])
        elif self.env_var in environ:
            value = self.parse(environ[self.env_var])
        else:
            value = self.default
        if value is None and self.required:
            raise ParameterValueException(
                f"parameter '{self.name}' is required and has no value",
                hint=f"Pass --{self.name} VALUE or set {self.env_var}.",
            )
        return value

    def to_spec(self) -> dict[str, Any]:
        """The parameter in the Flow manifest: name, type, default (if any), required, help."""
        spec: dict[str, Any] = {"name": self.name, "type": self.kind}
        if self.default is not None:
            spec["default"] = self.default
        spec["required"] = self.required
        if self.help:
            spec["help"] = self.help
        if self.separator:
            spec["separator"] = self.separator
        return spec

    # -- descriptor: read-only value on flow objects ------------------------------------

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Parameter: ...

    @overload
    def __get__(self, obj: FlowSpec, owner: type[Any] | None = None) -> Any: ...

    def __get__(self, obj: FlowSpec | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        values: dict[str, Any] = obj.__dict__.setdefault("_parameter_values", {})
        if self.name not in values:
            values[self.name] = self.resolve({}, os.environ)
        return values[self.name]

    def __set__(self, obj: FlowSpec, value: Any) -> None:
        raise AttributeError(
            f"Parameter '{self.name}' is read-only in steps; store a derived value "
            "in another artifact instead"
        )

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, type={self.kind}, default={self.default!r})"


def flow_parameters(flow_cls: type[FlowSpec]) -> list[tuple[str, Parameter]]:
    """``(attribute name, Parameter)`` of a flow class, base classes first, in source order."""
    found: dict[str, Parameter] = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Parameter):
                found[attr] = value
            elif attr in found:
                del found[attr]  # a subclass replaced the parameter
    return list(found.items())


def check_parameters(
    parameters: Iterable[tuple[str, Parameter]], step_names: Iterable[str]
) -> None:
    """Reject case-insensitive duplicate parameter names and names of steps."""
    steps = set(step_names)
    seen: dict[str, tuple[str, Parameter]] = {}
    for attr, param in parameters:
        for clash in {param.name, attr} & steps:
            raise InvalidParameterException(
                f"Parameter '{param.name}' (attribute '{attr}') has the name of step '{clash}'",
                file=param.file,
                line=param.line,
                hint="Rename the parameter or the step.",
            )
        key = param.name.lower()
        if key in seen:
            other_attr, _ = seen[key]
            raise InvalidParameterException(
                f"Parameter name '{param.name}' (attribute '{attr}') is already used by "
                f"attribute '{other_attr}' (names are case-insensitive)",
                file=param.file,
                line=param.line,
                hint="Give every parameter its own name.",
            )
        seen[key] = (attr, param)
