"""Where in the user's flow file something is (internal).

Owns: finding the file and line of a decorator, a ``def``, a ``class`` or a
``Parameter(...)`` call so that errors can say ``flow.py:12``. Reads only
code objects, frames and ``linecache``; never imports user code.
"""

from __future__ import annotations

import linecache
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Location:
    """A place in a source file (``line`` 0 when unknown)."""

    file: str | None = None
    line: int = 0


def caller_location(depth: int = 1) -> Location:
    """The file and line being executed `depth` frames above the caller.

    ``depth=1`` is the function that called the function calling this one;
    while a decorator is applied, that frame's line is the decorator's line.
    """
    try:
        frame = sys._getframe(depth + 1)
    except ValueError:  # pragma: no cover - stack shallower than asked
        return Location()
    return Location(frame.f_code.co_filename, frame.f_lineno)


def def_location(func: Callable[..., Any]) -> Location:
    """The line of the ``def`` of `func` (its code starts at the first decorator)."""
    code = getattr(func, "__code__", None)
    if code is None:
        return Location()
    file, first = code.co_filename, code.co_firstlineno
    # Skip the decorator lines (they may span several lines each).
    for offset in range(200):
        text = linecache.getline(file, first + offset).lstrip()
        if not text:
            if offset and not linecache.getline(file, first + offset):
                break  # past the end of the file
            continue
        if text.startswith(("def ", "async def ")):
            return Location(file, first + offset)
    return Location(file, first)
