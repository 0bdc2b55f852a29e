"""build_graph over the shared graph-shape fixtures: node types, edges, splits, lines."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from kflow import FlowSpec, step
from kflow.graph import FlowGraph, StepNode, build_graph
from kflow.lint import check
from tests.fixtures.flows import FLOWS_DIR, broken_names, good_names, load_flow, path_of

# step -> (type, next steps, split_parents, matching_join)
Shape = dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str | None]]

SHAPES: dict[str, Shape] = {
    "linear": {
        "start": ("start", ("a",), (), None),
        "a": ("linear", ("end",), (), None),
        "end": ("end", (), (), None),
    },
    "branch": {
        "start": ("split-static", ("a", "b"), (), "join"),
        "a": ("linear", ("join",), ("start",), None),
        "b": ("linear", ("join",), ("start",), None),
        "join": ("join", ("end",), ("start",), None),
        "end": ("end", (), (), None),
    },
    "nested_branches": {
        "start": ("split-static", ("a", "b"), (), "join"),
        "a": ("split-static", ("aa", "ab"), ("start",), "a_join"),
        "aa": ("linear", ("a_join",), ("start", "a"), None),
        "ab": ("linear", ("a_join",), ("start", "a"), None),
        "a_join": ("join", ("join",), ("start", "a"), None),
        "b": ("linear", ("b2",), ("start",), None),
        "b2": ("linear", ("join",), ("start",), None),
        "join": ("join", ("end",), ("start",), None),
        "end": ("end", (), (), None),
    },
    "foreach": {
        "start": ("start", ("foreach_split",), (), None),
        "foreach_split": ("split-foreach", ("foreach_inner_first",), (), "foreach_join"),
        "foreach_inner_first": ("linear", ("foreach_inner_second",), ("foreach_split",), None),
        "foreach_inner_second": ("linear", ("foreach_join",), ("foreach_split",), None),
        "foreach_join": ("join", ("end",), ("foreach_split",), None),
        "end": ("end", (), (), None),
    },
    "nested_foreach": {
        "start": ("start", ("foreach_split_x",), (), None),
        "foreach_split_x": ("split-foreach", ("foreach_split_y",), (), "foreach_join_x"),
        "foreach_split_y": ("split-foreach", ("foreach_split_z",), ("foreach_split_x",),
                            "foreach_join_y"),
        "foreach_split_z": ("split-foreach", ("foreach_inner",),
                            ("foreach_split_x", "foreach_split_y"), "foreach_join_z"),
        "foreach_inner": ("linear", ("foreach_join_z",),
                          ("foreach_split_x", "foreach_split_y", "foreach_split_z"), None),
        "foreach_join_z": ("join", ("foreach_join_y",),
                           ("foreach_split_x", "foreach_split_y", "foreach_split_z"), None),
        "foreach_join_y": ("join", ("foreach_join_x",), ("foreach_split_x", "foreach_split_y"),
                           None),
        "foreach_join_x": ("join", ("end",), ("foreach_split_x",), None),
        "end": ("end", (), (), None),
    },
    "switch": {
        "start": ("start", ("switch_step",), (), None),
        "switch_step": ("split-switch", ("a", "b", "c"), (), None),
        "a": ("linear", ("end",), (), None),
        "b": ("linear", ("end",), (), None),
        "c": ("linear", ("end",), (), None),
        "end": ("end", (), (), None),
    },
    "recursive_switch": {
        "start": ("start", ("loop_step",), (), None),
        "loop_step": ("split-switch", ("loop_step", "exit_loop"), (), None),
        "exit_loop": ("linear", ("end",), (), None),
        "end": ("end", (), (), None),
    },
    "switch_in_branch": {
        "start": ("split-static", ("a", "b"), (), "join"),
        "a": ("split-switch", ("c", "d"), ("start",), None),
        "c": ("linear", ("join",), ("start",), None),
        "d": ("linear", ("join",), ("start",), None),
        "b": ("linear", ("join",), ("start",), None),
        "join": ("join", ("end",), ("start",), None),
        "end": ("end", (), (), None),
    },
    "foreach_in_switch": {
        "start": ("split-switch", ("process_items", "skip_processing"), (), None),
        "process_items": ("split-foreach", ("do_work",), (), "join_work"),
        "do_work": ("linear", ("join_work",), ("process_items",), None),
        "join_work": ("join", ("end",), ("process_items",), None),
        "skip_processing": ("linear", ("end",), (), None),
        "end": ("end", (), (), None),
    },
    "inheritance": {
        "start": ("start", ("train",), (), None),
        "train": ("linear", ("end",), (), None),
        "end": ("end", (), (), None),
    },
    "parameters_decorators": {
        "start": ("start", ("train",), (), None),
        "train": ("linear", ("evaluate",), (), None),
        "evaluate": ("linear", ("end",), (), None),
        "end": ("end", (), (), None),
    },
}


def graph_of(name: str) -> FlowGraph:
    return build_graph(load_flow(name))


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line of `path` containing `text`."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def test_every_good_fixture_has_a_shape() -> None:
    assert set(good_names()) == set(SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shape(name: str) -> None:
    graph = graph_of(name)
    got = {n.name: (n.type, n.out, n.split_parents, n.matching_join) for n in graph}
    assert got == SHAPES[name]


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_in_steps_mirror_out_edges(name: str) -> None:
    graph = graph_of(name)
    for node in graph:
        expected = [n.name for n in graph if node.name in n.out]
        assert list(node.in_steps) == expected, node.name  # in topological order


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_topological_order(name: str) -> None:
    graph = graph_of(name)
    order = list(graph.steps)
    assert order[0] == "start" and order[-1] == "end"
    for node in graph:
        for target in node.out:
            if target != node.name:  # a switch's recursion
                assert order.index(node.name) < order.index(target), (node.name, target)
    assert order == list(graph_of(name).steps)  # deterministic


def test_order_lists_a_branch_before_the_next_one() -> None:
    assert list(graph_of("nested_branches").steps) == [
        "start", "a", "aa", "ab", "a_join", "b", "b2", "join", "end"]


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_lines_are_lines_of_the_file(name: str) -> None:
    graph = graph_of(name)
    assert graph.file == str(path_of(name))
    for node in graph:
        source = Path(node.file).read_text().splitlines()
        assert source[node.lineno - 1].lstrip().startswith(f"def {node.name}("), node.name
        if node.next_lineno is not None:
            assert "self.next(" in source[node.next_lineno - 1], node.name
    assert Path(graph.file).read_text().splitlines()[graph.lineno - 1].startswith("class ")


def test_inherited_steps_keep_their_own_file() -> None:
    graph = graph_of("inheritance")
    base = FLOWS_DIR / "base_steps.py"
    assert graph["start"].file == graph["end"].file == str(base)
    assert graph["train"].file == graph.file == str(path_of("inheritance"))
    assert graph["start"].lineno == line_of(base, "def start(")
    assert graph["start"].doc == "Load the data (inherited)."


def test_foreach_and_switch_details() -> None:
    foreach = graph_of("foreach")["foreach_split"]
    assert foreach.foreach_var == "arr"
    switch = graph_of("switch")["switch_step"]
    assert switch.switch_var == "condition"
    assert switch.switch_cases == (("case1", "a"), ("case2", "b"), ("case3", "c"))
    loop = graph_of("recursive_switch")["loop_step"]
    assert loop.switch_cases == (("continue", "loop_step"), ("exit", "exit_loop"))
    assert loop.in_steps == ("start", "loop_step")


def test_multiline_next_is_reported_at_its_first_line() -> None:
    node = graph_of("switch")["switch_step"]
    lines = path_of("switch").read_text().splitlines()
    assert [n for n, line in enumerate(lines, start=1) if line.strip() == "self.next("] == [
        node.next_lineno]
    assert node.next_calls == (node.next_lineno,)


def test_joins_and_docstrings() -> None:
    graph = graph_of("branch")
    assert graph.doc == "Two branches run side by side and are joined."
    assert graph["join"].is_join and not graph["a"].is_join
    assert graph["a"].doc == "First branch."
    assert graph["start"].doc == ""


def test_artifacts_are_read_from_the_steps() -> None:
    graph = graph_of("linear")
    path = path_of("linear")
    assert graph["start"].artifacts == (("data", line_of(path, "self.data = [1, 2, 3]")),)
    assert [name for name, _ in graph["a"].artifacts] == ["data"]


def test_decorators_are_recorded_with_their_lines() -> None:
    graph = graph_of("parameters_decorators")
    path = path_of("parameters_decorators")
    train = graph["train"]
    assert {d.name: d.attributes for d in train.decorators} == {
        "retry": {"times": 2}, "resources": {"cpu": 2, "memory": 4096}}
    assert train.decorator("retry") is not None
    assert train.decorator("retry").lineno == line_of(path, "@retry(")  # type: ignore[union-attr]
    assert graph["evaluate"].decorator("catch") is not None
    assert [(d.name, d.attributes) for d in graph.decorators] == [
        ("project", {"name": "fixtures"})]
    assert graph.decorators[0].lineno == line_of(path, "@project(")


@pytest.mark.parametrize("name", broken_names())
def test_broken_flows_still_build(name: str) -> None:
    graph = build_graph(load_flow(name))
    assert isinstance(graph, FlowGraph)
    assert all(isinstance(node, StepNode) for node in graph)


def test_a_flow_without_steps_builds_an_empty_graph() -> None:
    class EmptyFlow(FlowSpec):
        pass

    graph = build_graph(EmptyFlow)
    assert len(graph) == 0 and graph.name == "EmptyFlow"


def test_a_flow_defined_in_a_test_reads_its_own_source() -> None:
    class LocalFlow(FlowSpec):
        """Defined inside a function."""

        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    graph = build_graph(LocalFlow)
    assert graph.file == __file__
    assert graph["start"].out == ("end",)
    assert graph.doc == "Defined inside a function."
    assert graph["end"].lineno == line_of(Path(__file__), "        def end(self) -> None:")


def test_many_nested_splits_build_and_check_quickly(tmp_path: Path) -> None:
    # 12 three-way splits in a row are 3**12 paths: walking every path (as Metaflow
    # does) would take minutes; the graph and the linter remember what they walked.
    lines = ["from kflow import FlowSpec, step", "", "", "class DeepFlow(FlowSpec):"]

    def add(name: str, body: str, join: bool = False) -> None:
        lines.extend(["    @step", f"    def {name}(self{', inputs' if join else ''}):",
                      f"        {body}", ""])

    split = "start"
    for i in range(12):
        add(split, f"self.next(self.b{i}_0, self.b{i}_1, self.b{i}_2)")
        for j in range(3):
            add(f"b{i}_{j}", f"self.next(self.j{i})")
        add(f"j{i}", f"self.next(self.s{i + 1})", join=True)
        split = f"s{i + 1}"
    add(split, "self.next(self.end)")
    add("end", "pass")
    path = tmp_path / "deep_flow.py"
    path.write_text("\n".join(lines))
    spec = importlib.util.spec_from_file_location("kflow_test_deep_flow", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        started = time.monotonic()
        graph = build_graph(module.DeepFlow)
        assert check(graph, module.DeepFlow) == []
        assert time.monotonic() - started < 5
    finally:
        del sys.modules[spec.name]
    assert graph["b11_2"].split_parents == ("s11",)
    assert graph["s11"].matching_join == "j11"
