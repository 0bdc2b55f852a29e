"""Drawing graphs: text, Mermaid, DOT (checked structurally) and JSON (golden files).

Golden files live in tests/fixtures/golden/graphs/<fixture>.json. After an
intended change, rewrite them with ``KFLOW_REGENERATE=1 pytest tests/unit/graph``
and review the diff; the tests never rewrite them on their own.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from kflow import render
from kflow.graph import FlowGraph, build_graph
from tests.fixtures.flows import FLOWS_DIR, good_names, load_flow

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "golden" / "graphs"
REGENERATE = os.environ.get("KFLOW_REGENERATE") == "1"


def graph_of(name: str) -> FlowGraph:
    return build_graph(load_flow(name))


# -- JSON -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", good_names())
def test_to_json_matches_golden(name: str) -> None:
    data = render.to_json(graph_of(name), relative_to=str(FLOWS_DIR))
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    golden = GOLDEN_DIR / f"{name}.json"
    if REGENERATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}: run with KFLOW_REGENERATE=1"
    assert text == golden.read_text(), f"{golden} differs: review, then KFLOW_REGENERATE=1"


def test_to_json_keys_and_values() -> None:
    data = render.to_json(graph_of("foreach_in_switch"), relative_to=str(FLOWS_DIR))
    assert list(data) == ["name", "file", "doc", "start", "end", "decorators", "steps"]
    assert data["file"] == "foreach_in_switch.py"
    steps = {s["name"]: s for s in data["steps"]}
    assert list(steps["start"]) == ["name", "type", "next", "in", "foreach", "switch", "join",
                                    "split_parents", "file", "line", "doc", "decorators"]
    assert steps["start"]["switch"] == {"condition": "mode",
                                        "cases": {"process": "process_items",
                                                  "skip": "skip_processing"}}
    assert steps["process_items"]["foreach"] == "items"
    assert steps["process_items"]["join"] == "join_work"
    assert steps["do_work"]["split_parents"] == ["process_items"]
    assert steps["end"]["in"] == ["join_work", "skip_processing"]
    assert steps["do_work"]["file"] == "foreach_in_switch.py"
    assert json.loads(json.dumps(data)) == data


def test_to_json_gives_inherited_steps_their_file() -> None:
    data = render.to_json(graph_of("inheritance"), relative_to=str(FLOWS_DIR))
    assert {s["name"]: s["file"] for s in data["steps"]} == {
        "start": "base_steps.py", "train": "inheritance.py", "end": "base_steps.py"}


def test_to_json_keeps_the_absolute_file_by_default() -> None:
    graph = graph_of("linear")
    assert render.to_json(graph)["file"] == graph.file


def test_to_json_makes_any_attribute_serialisable() -> None:
    graph = graph_of("parameters_decorators")
    data = render.to_json(graph)
    train = next(s for s in data["steps"] if s["name"] == "train")
    assert train["decorators"] == [
        {"name": "retry", "attributes": {"times": 2}},
        {"name": "resources", "attributes": {"cpu": 2, "memory": 4096}},
    ]
    assert render._jsonable({"f": len, 1: (1, None)}) == {"f": repr(len), "1": [1, None]}


# -- text -----------------------------------------------------------------------------------------

def test_text_lists_steps_in_order_with_docs_and_next() -> None:
    out = render.text(graph_of("branch"))
    assert out.splitlines()[0] == "BranchFlow: Two branches run side by side and are joined."
    headers = [line for line in out.splitlines() if line.startswith("Step ")]
    assert headers == ["Step start", "Step a", "Step b", "Step join (join)", "Step end"]
    assert "Step a\n    First branch.\n    => join\n" in out
    assert "Step start\n    => a, b\n" in out


def test_text_shows_foreach_and_switch() -> None:
    out = render.text(graph_of("foreach_in_switch"))
    assert "Step start (switch on mode)\n    => 'process': process_items\n" \
           "    => 'skip': skip_processing\n" in out
    assert "Step process_items (foreach over items)\n" \
           "    => do_work (for each item of items)\n" in out


# -- Mermaid --------------------------------------------------------------------------------------

MERMAID_NODE = re.compile(r'^    (s_\w+)(\(\[|\[\[|\[/|\[\\|\[|\{)"([^"]*)"(\]\)|\]\]|/\]|\]|\})$')
MERMAID_EDGE = re.compile(r'^    (s_\w+) (-->|==>)(\|"[^"]*"\|)? (s_\w+)$')


@pytest.mark.parametrize("name", good_names())
def test_mermaid_structure(name: str) -> None:
    graph = graph_of(name)
    lines = render.mermaid(graph).splitlines()
    assert lines[0] == "flowchart TD"
    nodes = [m for line in lines[1:] if (m := MERMAID_NODE.match(line))]
    edges = [m for line in lines[1:] if (m := MERMAID_EDGE.match(line))]
    assert len(nodes) + len(edges) == len(lines) - 1, "every line is a node or an edge"
    assert [m[1] for m in nodes] == [f"s_{n.name}" for n in graph]
    expected = {(f"s_{n.name}", f"s_{t}") for n in graph for t in n.out}
    assert {(m[1], m[4]) for m in edges} == expected


def test_mermaid_shapes_and_labels() -> None:
    out = render.mermaid(graph_of("foreach_in_switch"))
    assert '    s_start{"start<br/>switch mode"}' in out
    assert '    s_process_items[/"process_items<br/>foreach items"/]' in out
    assert '    s_join_work[\\"join_work<br/>join"/]' in out
    assert '    s_end(["end"])' in out
    assert '    s_start -->|"process"| s_process_items' in out
    assert "    s_process_items ==> s_do_work" in out


def test_mermaid_escapes_labels() -> None:
    assert render._mermaid_text('a "b" <c> & d') == "a #quot;b#quot; #lt;c#gt; #amp; d"


# -- DOT ------------------------------------------------------------------------------------------

DOT_NODE = re.compile(r'^    "(\w+)" \[label="([^"]*)", shape=(\w+)(, style="rounded")?\];$')
DOT_EDGE = re.compile(r'^    "(\w+)" -> "(\w+)"( \[[^\]]*\])?;$')


@pytest.mark.parametrize("name", good_names())
def test_dot_structure(name: str) -> None:
    graph = graph_of(name)
    lines = render.dot(graph).splitlines()
    assert lines[0] == f'digraph "{graph.name}" {{' and lines[-1] == "}"
    body = [line for line in lines[1:-1] if not line.strip().startswith(("rankdir", "node [",
                                                                       "edge ["))]
    nodes = [m for line in body if (m := DOT_NODE.match(line))]
    edges = [m for line in body if (m := DOT_EDGE.match(line))]
    assert len(nodes) + len(edges) == len(body), "every line is a node or an edge"
    assert [m[1] for m in nodes] == list(graph.steps)
    assert {(m[1], m[2]) for m in edges} == {(n.name, t) for n in graph for t in n.out}
    assert lines[1:].count("}") == 1 and sum(line.count("{") for line in lines) == 1


def test_dot_labels_switch_cases_and_quotes() -> None:
    out = render.dot(graph_of("recursive_switch"))
    assert '    "loop_step" -> "loop_step" [label="continue"];' in out
    assert '    "loop_step" [label="loop_step\\nswitch loop_status", shape=diamond];' in out
    assert render._dot_id('say "hi"\\') == '"say \\"hi\\"\\\\"'
