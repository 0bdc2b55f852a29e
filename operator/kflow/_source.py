"""Reading a flow's source: step `def`s, `self.next(...)` calls, class attributes (internal).

Owns: locating a step function or a flow class in its source file (the
whole file is parsed, so every line number is a line of the FILE, and
inherited steps keep their own file); turning a step's `ast` into a
`ParsedStep` (the number of arguments, every `self.next` call, the
transition of the trailing one or why it is not a valid transition, the
attributes assigned on `self`); and finding where class attributes such as
`Parameter`s are assigned. Used by `kflow.graph` and `kflow.lint`.

Transition forms (Metaflow's), the only ones accepted:

    self.next(self.a)                                   linear (or a join's exit)
    self.next(self.a, self.b, ...)                      static split
    self.next(self.a, foreach="attr")                   foreach split
    self.next({"x": self.a, 1: self.b}, condition="attr")  switch (keys: str/number literals)

Must not import: anything of kflow besides the standard library.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["none", "linear", "static", "foreach", "switch"]
StepKind = Literal["start", "linear", "split-static", "split-foreach", "split-switch", "join",
                   "end"]

KNOWN_KEYWORDS = ("foreach", "condition")
SUPPORTED_FORMS = (
    "self.next(self.step) | self.next(self.a, self.b) | "
    "self.next(self.step, foreach='attribute') | "
    "self.next({'value': self.a, 'other': self.b}, condition='attribute')"
)


@dataclass(frozen=True)
class Transition:
    """What a `self.next(...)` call says (best effort when it is invalid)."""

    kind: Kind = "none"
    out: tuple[str, ...] = ()
    foreach_var: str | None = None
    switch_var: str | None = None
    switch_cases: tuple[tuple[str, str], ...] = ()
    error: str | None = None                  # why this is not a valid transition


@dataclass(frozen=True)
class ParsedStep:
    """The facts about one step read from its source."""

    name: str
    lineno: int                               # the `def` line
    num_args: int                             # positional parameters, `self` included
    next_calls: tuple[int, ...]               # lines of every self.next(...) call
    next_lineno: int | None                   # line of the trailing self.next(...)
    transition: Transition
    artifacts: tuple[tuple[str, int], ...]    # (name, first line) of self.<name> = ...

    @property
    def type(self) -> StepKind:
        """Metaflow's node type, derived from the name, the args and the transition."""
        if self.name == "end":
            return "end"
        kind = self.transition.kind
        if kind == "switch":
            return "split-switch"
        if kind == "foreach":
            return "split-foreach"
        if kind == "static":
            return "split-static"
        if self.name == "start":
            return "start"
        return "join" if self.num_args >= 2 else "linear"


FuncDef = ast.FunctionDef | ast.AsyncFunctionDef


class SourceCache:
    """Parsed source files, by path (each file is parsed once per graph build)."""

    def __init__(self) -> None:
        self._trees: dict[str, ast.Module] = {}

    def _tree(self, obj: Any) -> tuple[str, ast.Module, int]:
        file = inspect.getsourcefile(obj) or inspect.getfile(obj)
        lines, lnum = inspect.findsource(obj)
        if file not in self._trees:
            self._trees[file] = ast.parse("".join(lines), filename=file)
        return file, self._trees[file], lnum + 1

    def function_def(self, func: Any) -> tuple[str, FuncDef]:
        """The file and `def` node of a function (decorator wrappers are unwrapped)."""
        func = inspect.unwrap(func)
        file, tree, _ = self._tree(func)
        code = getattr(func, "__code__", None)
        name = code.co_name if code is not None else func.__name__
        first = code.co_firstlineno if code is not None else 0
        defs = [n for n in ast.walk(tree)
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name]
        if not defs:
            raise OSError(f"could not find the source of step {name!r} in {file}")
        exact = [n for n in defs if _start_line(n) == first or n.lineno == first]
        best = exact[0] if exact else min(defs, key=lambda n: abs(n.lineno - first))
        return file, best

    def class_def(self, cls: type) -> tuple[str, ast.ClassDef | None]:
        """The file and `class` node of a flow class."""
        file, tree, start = self._tree(cls)
        defs = [n for n in ast.walk(tree)
                if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
        exact = [n for n in defs if _start_line(n) == start or n.lineno == start]
        found = exact or defs
        return file, found[0] if found else None


@dataclass(frozen=True)
class ClassAssignment:
    """`name = value` in a flow class body (or a base class's)."""

    file: str
    line: int
    is_parameter: bool                        # the value is a Parameter(...) / IncludeFile(...)


PARAMETER_CALLS = frozenset({"Parameter", "IncludeFile"})


def class_assignments(cls: type) -> dict[str, ClassAssignment]:
    """Names assigned in the bodies of `cls` and its bases (the most derived one wins).

    Classes whose source cannot be read (`object`, built-ins) are skipped.
    """
    found: dict[str, ClassAssignment] = {}
    cache = SourceCache()
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        try:
            file, node = cache.class_def(klass)
        except (OSError, TypeError):
            continue
        for stmt in node.body if node is not None else ():
            targets: list[ast.expr] = (
                stmt.targets if isinstance(stmt, ast.Assign)
                else [stmt.target] if isinstance(stmt, ast.AnnAssign) and stmt.value else [])
            value = stmt.value if isinstance(stmt, ast.Assign | ast.AnnAssign) else None
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = ClassAssignment(file, stmt.lineno, _is_param_call(value))
    return found


def _is_param_call(value: ast.expr | None) -> bool:
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    name = (func.id if isinstance(func, ast.Name)
            else func.attr if isinstance(func, ast.Attribute) else "")
    return name in PARAMETER_CALLS


def _start_line(node: FuncDef | ast.ClassDef) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def def_line(node: FuncDef | ast.ClassDef) -> int:
    """The line of the `def` / `class` keyword (after any decorators)."""
    return node.lineno


def decorator_lines(node: FuncDef | ast.ClassDef) -> dict[str, int]:
    """Decorator name → its line, for `@name`, `@name(...)`, `@module.name(...)`."""
    lines: dict[str, int] = {}
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        name = (target.id if isinstance(target, ast.Name)
                else target.attr if isinstance(target, ast.Attribute) else None)
        if name is not None:
            lines.setdefault(name, deco.lineno)
    return lines


def parse_step(name: str, node: FuncDef) -> ParsedStep:
    """Read one step's `def`: arguments, self.next calls, transition, artifacts."""
    calls = sorted(n.lineno for n in ast.walk(node) if isinstance(n, ast.Call) and _is_self_next(n))
    tail = node.body[-1] if node.body else None
    transition, next_lineno = Transition(), None
    if (isinstance(tail, ast.Expr) and isinstance(tail.value, ast.Call)
            and _is_self_next(tail.value)):
        transition, next_lineno = parse_next(tail.value), tail.lineno
    return ParsedStep(
        name=name,
        lineno=node.lineno,
        num_args=len(node.args.posonlyargs) + len(node.args.args),
        next_calls=tuple(calls),
        next_lineno=next_lineno,
        transition=transition,
        artifacts=_artifacts(node),
    )


def _is_self_next(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "next" and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self")


def _artifacts(node: FuncDef) -> tuple[tuple[str, int], ...]:
    """Every `self.<name>` stored to (=, +=, annotated, unpacking, for/with targets)."""
    first: dict[str, int] = {}
    for sub in ast.walk(node):
        if (isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store)
                and isinstance(sub.value, ast.Name) and sub.value.id == "self"
                and (sub.attr not in first or sub.lineno < first[sub.attr])):
            first[sub.attr] = sub.lineno
    return tuple(sorted(first.items(), key=lambda item: (item[1], item[0])))


def parse_next(call: ast.Call) -> Transition:
    """The transition a `self.next(...)` call describes, or why it is invalid."""
    keywords = {k.arg: k.value for k in call.keywords if k.arg is not None}
    if any(k.arg is None for k in call.keywords):
        return Transition(error="self.next() does not take **keyword arguments")
    for key in keywords:
        if key == "num_parallel":
            return Transition(error="num_parallel= (@parallel gang steps) is not supported "
                                    "by kflow")
        if key not in KNOWN_KEYWORDS:
            return Transition(error=f"self.next() got an unknown keyword argument {key!r} "
                                    "(it takes foreach= or condition=)")
    if not call.args:
        return Transition(error="self.next() names no step")
    if any(isinstance(a, ast.Starred) for a in call.args):
        return Transition(error="self.next() cannot take *arguments: name each step")
    if len(call.args) == 1 and isinstance(call.args[0], ast.Dict):
        return _parse_switch(call.args[0], keywords)
    return _parse_targets(call.args, keywords)


def _parse_targets(args: list[ast.expr], keywords: dict[str, ast.expr]) -> Transition:
    out: list[str] = []
    for pos, arg in enumerate(args, start=1):
        step = _self_attr(arg)
        if step is None:
            what = "a dict" if isinstance(arg, ast.Dict) else f"`{ast.unparse(arg)}`"
            return Transition(error=f"argument {pos} of self.next() is {what}, "
                                    "not a step written as self.<step>")
        out.append(step)
    repeated = sorted({s for s in out if out.count(s) > 1})
    if repeated:
        return Transition(out=tuple(dict.fromkeys(out)),
                          error=f"self.next() names {', '.join(repeated)} more than once")
    if "condition" in keywords:
        return Transition(out=tuple(out), error="condition= needs a dict of cases as the only "
                                                "argument: self.next({'x': self.a, ...}, "
                                                "condition='attribute')")
    if "foreach" in keywords:
        var = _str_literal(keywords["foreach"])
        if var is None:
            return Transition(kind="foreach", out=tuple(out),
                              error="foreach= must be a string literal naming an attribute "
                                    "of self, e.g. foreach='items'")
        if len(out) != 1:
            return Transition(kind="foreach", out=tuple(out), foreach_var=var,
                              error=f"a foreach goes to exactly one step, not {len(out)} "
                                    f"({', '.join(out)})")
        return Transition(kind="foreach", out=tuple(out), foreach_var=var)
    return Transition(kind="static" if len(out) > 1 else "linear", out=tuple(out))


def _parse_switch(cases_node: ast.Dict, keywords: dict[str, ast.expr]) -> Transition:
    if "foreach" in keywords:
        return Transition(error="a switch (a dict of cases) cannot also be a foreach")
    cases: list[tuple[str, str]] = []
    for key, value in zip(cases_node.keys, cases_node.values, strict=True):
        if key is None:
            return Transition(error="switch cases cannot use **unpacking: write each case")
        case = _case_literal(key)
        if case is None:
            return Transition(error=f"switch case key `{ast.unparse(key)}` is not a string or "
                                    "number literal (keys must be written in the code)")
        step = _self_attr(value)
        if step is None:
            return Transition(error=f"switch case {case!r} goes to `{ast.unparse(value)}`, "
                                    "not a step written as self.<step>")
        if any(c == case for c, _ in cases):
            return Transition(error=f"switch case {case!r} is written twice")
        cases.append((case, step))
    out = tuple(dict.fromkeys(step for _, step in cases))
    condition = keywords.get("condition")
    var = _str_literal(condition) if condition is not None else None
    if condition is not None and var is None:
        return Transition(kind="switch", out=out, switch_cases=tuple(cases),
                          error="condition= must be a string literal naming an attribute of "
                                "self, e.g. condition='mode'")
    # A missing condition is reported by the linter's switch rule, like Metaflow's.
    return Transition(kind="switch", out=out, switch_var=var, switch_cases=tuple(cases))


def _self_attr(node: ast.expr) -> str | None:
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "self"):
        return node.attr
    return None


def _str_literal(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _case_literal(node: ast.expr) -> str | None:
    """A switch key as text: string and number literals only (`-1` included)."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, str | int | float):
        return str(value)
    return None
