"""Parsing `self.next(...)` calls and step bodies from source (kflow._source)."""

from __future__ import annotations

import ast
import textwrap

import pytest

from kflow._source import ParsedStep, Transition, parse_next, parse_step


def next_of(code: str) -> Transition:
    call = ast.parse(code).body[0]
    assert isinstance(call, ast.Expr) and isinstance(call.value, ast.Call)
    return parse_next(call.value)


def step_of(code: str) -> ParsedStep:
    func = ast.parse(textwrap.dedent(code)).body[0]
    assert isinstance(func, ast.FunctionDef)
    return parse_step(func.name, func)


VALID = [
    ("self.next(self.a)", "linear", ("a",), None, None, ()),
    ("self.next(self.a, self.b, self.c)", "static", ("a", "b", "c"), None, None, ()),
    ("self.next(self.a, foreach='items')", "foreach", ("a",), "items", None, ()),
    ("self.next({'x': self.a, 'y': self.b}, condition='mode')", "switch", ("a", "b"), None,
     "mode", (("x", "a"), ("y", "b"))),
    ("self.next({1: self.a, -2: self.b, 2.5: self.c}, condition='n')", "switch",
     ("a", "b", "c"), None, "n", (("1", "a"), ("-2", "b"), ("2.5", "c"))),
    ("self.next({'again': self.loop, 'done': self.exit}, condition='s')", "switch",
     ("loop", "exit"), None, "s", (("again", "loop"), ("done", "exit"))),
    ("self.next({'x': self.a, 'y': self.a, 'z': self.b}, condition='m')", "switch",
     ("a", "b"), None, "m", (("x", "a"), ("y", "a"), ("z", "b"))),
    ("self.next({'x': self.a, 'y': self.b})", "switch", ("a", "b"), None, None,
     (("x", "a"), ("y", "b"))),  # no condition: the linter's switch rule reports it
]


@pytest.mark.parametrize(("code", "kind", "out", "foreach", "condition", "cases"), VALID)
def test_valid_transitions(code: str, kind: str, out: tuple[str, ...], foreach: str | None,
                           condition: str | None, cases: tuple[tuple[str, str], ...]) -> None:
    t = next_of(code)
    assert (t.kind, t.out, t.foreach_var, t.switch_var, t.switch_cases, t.error) == (
        kind, out, foreach, condition, cases, None)


INVALID = [
    ("self.next()", "names no step"),
    ("self.next('a')", "not a step written as self.<step>"),
    ("self.next(a)", "not a step written as self.<step>"),
    ("self.next(other.a)", "not a step written as self.<step>"),
    ("self.next(*steps)", "*arguments"),
    ("self.next(self.a, **kw)", "**keyword"),
    ("self.next(self.a, when='x')", "unknown keyword argument 'when'"),
    ("self.next(self.a, num_parallel=4)", "not supported by kflow"),
    ("self.next(self.a, foreach=self.items)", "foreach= must be a string literal"),
    ("self.next(self.a, foreach=name)", "foreach= must be a string literal"),
    ("self.next(self.a, self.b, foreach='items')", "exactly one step, not 2"),
    ("self.next(self.a, condition='m')", "condition= needs a dict"),
    ("self.next(self.a, self.a)", "names a more than once"),
    ("self.next({KEY: self.a, 'y': self.b}, condition='m')", "`KEY` is not a string or number"),
    ("self.next({'x': self.a, 'x': self.b}, condition='m')", "written twice"),
    ("self.next({'x': 'a', 'y': self.b}, condition='m')", "not a step written as self.<step>"),
    ("self.next({**cases}, condition='m')", "**unpacking"),
    ("self.next({'x': self.a, 'y': self.b}, condition=c)", "condition= must be a string"),
    ("self.next({'x': self.a, 'y': self.b}, foreach='m')", "cannot also be a foreach"),
    ("self.next({None: self.a, 'y': self.b}, condition='m')", "not a string or number literal"),
    ("self.next(self.a, {'x': self.b})", "argument 2 of self.next() is a dict"),
]


@pytest.mark.parametrize(("code", "fragment"), INVALID)
def test_invalid_transitions(code: str, fragment: str) -> None:
    error = next_of(code).error
    assert error is not None and fragment in error


def test_the_trailing_next_is_the_transition() -> None:
    s = step_of("""
        def a(self):
            self.x = 1
            self.next(self.b)
    """)
    assert (s.transition.out, s.next_lineno, s.next_calls, s.num_args) == (("b",), 4, (4,), 1)
    assert s.type == "linear"


def test_next_inside_a_block_is_not_a_transition() -> None:
    s = step_of("""
        def a(self):
            if self.x:
                self.next(self.b)
    """)
    assert (s.transition.kind, s.next_lineno, s.next_calls) == ("none", None, (4,))


def test_every_next_call_is_counted() -> None:
    s = step_of("""
        def a(self):
            if self.x:
                self.next(self.b)
            self.next(self.c)
    """)
    assert s.next_calls == (4, 5) and s.transition.out == ("c",)


@pytest.mark.parametrize(("code", "expected"), [
    ("def start(self):\n    self.next(self.a)", "start"),
    ("def start(self):\n    self.next(self.a, self.b)", "split-static"),
    ("def end(self):\n    pass", "end"),
    ("def end(self):\n    self.next(self.a)", "end"),
    ("def j(self, inputs):\n    self.next(self.a)", "join"),
    ("def j(self, inputs):\n    self.next(self.a, self.b)", "split-static"),
    ("def j(self, inputs):\n    pass", "join"),
    ("def f(self):\n    self.next(self.a, foreach='x')", "split-foreach"),
    ("def f(self):\n    self.next({'a': self.a}, condition='x')", "split-switch"),
    ("def f(self):\n    pass", "linear"),
])
def test_step_types(code: str, expected: str) -> None:
    assert step_of(code).type == expected


def test_artifacts_cover_every_kind_of_assignment() -> None:
    s = step_of("""
        def a(self):
            self.x = 1
            self.y += 1
            self.z: int = 2
            self.p, (self.q, other) = 1, (2, 3)
            for self.i in range(2):
                pass
            with open(".") as self.f:
                pass
            self.x = 3
            print(self.read_only)
            self.next(self.b)
    """)
    assert s.artifacts == (("x", 3), ("y", 4), ("z", 5), ("p", 6), ("q", 6), ("i", 7),
                           ("f", 9))
