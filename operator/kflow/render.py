"""Drawing a flow's graph: text (`show`), Mermaid, Graphviz DOT and JSON (pure).

Owns: turning a `FlowGraph` into text for people and tools. Steps are
always listed in the graph's topological order, so every output is stable
for a given flow. Reads nothing but the graph.

`to_json(graph)` is the stable data form (also what the Flow manifest
embeds); its keys, all always present:

    name         the flow class's name
    file         the flow file (relative to `relative_to` when given)
    doc          the flow's docstring ("" when none)
    start, end   the names of the first and last steps
    decorators   [{name, attributes}] flow decorators, as written
    steps        one object per step, in topological order:
      name, type        type: start | linear | split-static | split-foreach |
                        split-switch | join | end
      next              [step names] in the order written (a switch: its distinct targets)
      in                [step names] that go to this step
      foreach           the attribute iterated (split-foreach), else null
      switch            {condition, cases: {case value: step}} (split-switch), else null
      join             the join closing this split (static/foreach splits), else null
      split_parents     [open static/foreach splits around this step], outermost first
      file, line        where the step's `def` is (an inherited step's file is its base
                        class's), `file` relative like the flow's
      doc               the step's docstring ("" when none)
      decorators        [{name, attributes}] step decorators, innermost (nearest
                        `@step`) first

Attribute values that are not JSON types are given as their `repr`.

Must not import: `kflow.lint`, the Kubernetes or object-store clients.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from kflow.graph import DecoratorSpec, FlowGraph, StepNode

__all__ = ["dot", "mermaid", "text", "to_json"]


# -- text -----------------------------------------------------------------------------------------

def text(graph: FlowGraph) -> str:
    """The graph as `metaflow show` prints it: docstrings and `=> next` per step.

    Example::

        BranchFlow: Two branches run side by side and are joined.

        Step start
            => a, b

        Step a
            First branch.
            => join
    """
    lines: list[str] = [f"{graph.name}: {graph.doc}" if graph.doc else graph.name, ""]
    for node in graph:
        lines.append(f"Step {node.name}" + _text_kind(node))
        lines.extend(f"    {line}".rstrip() for line in node.doc.splitlines())
        lines.extend(f"    {line}" for line in _text_next(node))
        lines.append("")
    return "\n".join(lines)


def _text_kind(node: StepNode) -> str:
    if node.type == "join":
        return " (join)"
    if node.type == "split-foreach":
        return f" (foreach over {node.foreach_var})"
    if node.type == "split-switch":
        return f" (switch on {node.switch_var})"
    return ""


def _text_next(node: StepNode) -> list[str]:
    if node.type == "split-switch":
        return [f"=> {case!r}: {step}" for case, step in node.switch_cases]
    if node.type == "split-foreach":
        return [f"=> {', '.join(node.out)} (for each item of {node.foreach_var})"]
    return [f"=> {', '.join(node.out)}"] if node.out else []


# -- Mermaid --------------------------------------------------------------------------------------

# (open, close) of the node shape per step type.
_MERMAID_SHAPES: dict[str, tuple[str, str]] = {
    "start": ("([", "])"),          # stadium
    "end": ("([", "])"),
    "linear": ("[", "]"),           # rectangle
    "split-static": ("[[", "]]"),   # subroutine
    "split-foreach": ("[/", "/]"),  # parallelogram
    "split-switch": ("{", "}"),     # rhombus
    "join": ("[\\", "/]"),          # trapezoid
}


def mermaid(graph: FlowGraph) -> str:
    """A Mermaid `flowchart TD` of the graph.

    Shapes: start/end stadium, linear rectangle, static split subroutine,
    foreach parallelogram (label `foreach <attr>`), switch rhombus (label
    `switch <condition>`, edges labelled with the case), join trapezoid
    (label `join`). Node ids are `s_<step>` because `end` is a Mermaid
    keyword; the edges of a foreach are thick.
    """
    lines = ["flowchart TD"]
    for node in graph:
        opening, closing = _MERMAID_SHAPES[node.type]
        label = _mermaid_text(node.name + _label_suffix(node, "<br/>"))
        lines.append(f"    {_mid(node.name)}{opening}\"{label}\"{closing}")
    for node in graph:
        for target, label in _edges(node):
            arrow = "==>" if node.type == "split-foreach" else "-->"
            tag = f"|\"{_mermaid_text(label)}\"|" if label else ""
            lines.append(f"    {_mid(node.name)} {arrow}{tag} {_mid(target)}")
    return "\n".join(lines) + "\n"


def _mid(name: str) -> str:
    return "s_" + "".join(c if c.isalnum() or c == "_" else f"_{ord(c):x}_" for c in name)


def _mermaid_text(value: str) -> str:
    # Inside a quoted label Mermaid reads HTML entities, and `#...;` as its own escapes.
    return (value.replace("&", "#amp;").replace('"', "#quot;")
            .replace("<br/>", "\0").replace("<", "#lt;").replace(">", "#gt;")
            .replace("\0", "<br/>"))


# -- Graphviz DOT ---------------------------------------------------------------------------------

_DOT_SHAPES: dict[str, str] = {
    "start": "oval", "end": "oval", "linear": "box", "split-static": "box",
    "split-foreach": "parallelogram", "split-switch": "diamond", "join": "invtrapezium",
}


def dot(graph: FlowGraph) -> str:
    """A Graphviz `digraph` of the graph (render with `dot -Tsvg`).

    Same conventions as `mermaid`: shape per type, the type in the label,
    switch edges labelled with the case, foreach edges bold.
    """
    lines = [f"digraph {_dot_id(graph.name)} {{",
             "    rankdir=TB;",
             '    node [fontname="Helvetica", fontsize=11];',
             '    edge [fontname="Helvetica", fontsize=10];']
    for node in graph:
        label = node.name + _label_suffix(node, "\n")
        style = ', style="rounded"' if node.type in ("linear", "split-static") else ""
        lines.append(f"    {_dot_id(node.name)} [label={_dot_id(label)}, "
                     f"shape={_DOT_SHAPES[node.type]}{style}];")
    for node in graph:
        for target, label in _edges(node):
            attrs = [f"label={_dot_id(label)}"] if label else []
            if node.type == "split-foreach":
                attrs.append("style=bold")
            suffix = f" [{', '.join(attrs)}]" if attrs else ""
            lines.append(f"    {_dot_id(node.name)} -> {_dot_id(target)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_id(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# -- shared by the drawings -----------------------------------------------------------------------

def _label_suffix(node: StepNode, newline: str) -> str:
    if node.type == "split-foreach":
        return f"{newline}foreach {node.foreach_var}"
    if node.type == "split-switch":
        return f"{newline}switch {node.switch_var}"
    if node.type == "join":
        return f"{newline}join"
    return ""


def _edges(node: StepNode) -> list[tuple[str, str]]:
    """(target, label) per outgoing edge; switch cases to the same step share one edge."""
    if node.type != "split-switch":
        return [(target, "") for target in node.out]
    labels: dict[str, list[str]] = {}
    for case, target in node.switch_cases:
        labels.setdefault(target, []).append(case)
    return [(target, ", ".join(cases)) for target, cases in labels.items()]


# -- JSON -----------------------------------------------------------------------------------------

def to_json(graph: FlowGraph, *, relative_to: str | None = None) -> dict[str, Any]:
    """The graph as JSON-serialisable data (keys documented in this module's docstring).

    Parameters
    ----------
    relative_to:
        A directory; `file` is then given relative to it, with `/`
        separators (the manifest and golden files want no absolute paths).
    """
    def path(file: str) -> str:
        if relative_to is None:
            return file
        return os.path.relpath(file, relative_to).replace(os.sep, "/")

    return {
        "name": graph.name,
        "file": path(graph.file),
        "doc": graph.doc,
        "start": graph.start,
        "end": graph.end,
        "decorators": _decorators(graph.decorators),
        "steps": [_step(node, path(node.file or graph.file)) for node in graph],
    }


def _step(node: StepNode, file: str) -> dict[str, Any]:
    switch = None
    if node.type == "split-switch":
        switch = {"condition": node.switch_var, "cases": dict(node.switch_cases)}
    return {
        "name": node.name,
        "type": node.type,
        "next": list(node.out),
        "in": list(node.in_steps),
        "foreach": node.foreach_var if node.type == "split-foreach" else None,
        "switch": switch,
        "join": node.matching_join,
        "split_parents": list(node.split_parents),
        "file": file,
        "line": node.lineno,
        "doc": node.doc,
        "decorators": _decorators(node.decorators),
    }


def _decorators(decorators: Iterable[DecoratorSpec]) -> list[dict[str, Any]]:
    return [{"name": d.name, "attributes": _jsonable(d.attributes)} for d in decorators]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return repr(value)
