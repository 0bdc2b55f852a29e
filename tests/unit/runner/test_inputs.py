"""Input resolution for every graph shape (kflow.runner.inputs), over the fixture flows."""

from __future__ import annotations

import pytest

from kflow.graph import FlowGraph, build_graph
from kflow.runner.inputs import (
    InputPlan,
    TaskRef,
    foreach_depth,
    format_task_path,
    parse_task_path,
    resolve_inputs,
)
from tests.fixtures.flows import load_flow


def graph(name: str) -> FlowGraph:
    return build_graph(load_flow(name))


def T(step: str, *path: int) -> TaskRef:
    return TaskRef(step, tuple(path))


def splits(counts: dict[TaskRef, int]):  # type: ignore[no-untyped-def]
    def num_splits(task: TaskRef) -> int:
        return counts[task]
    return num_splits


def no_splits(task: TaskRef) -> int:
    raise AssertionError(f"num_splits({task}) must not be called")


CASES = [
    # (fixture, step, path, expected kind, expected slots)
    ("linear", "start", (), "start", ()),
    ("linear", "a", (), "linear", ((T("start"),),)),
    ("linear", "end", (), "linear", ((T("a"),),)),
    ("branch", "a", (), "linear", ((T("start"),),)),
    ("branch", "join", (), "join-static", ((T("a"),), (T("b"),))),
    ("nested_branches", "a_join", (), "join-static", ((T("aa"),), (T("ab"),))),
    ("nested_branches", "join", (), "join-static", ((T("a_join"),), (T("b2"),))),
    ("foreach", "foreach_split", (), "linear", ((T("start"),),)),
    ("foreach", "foreach_inner_first", (2,), "foreach-child", ((T("foreach_split"),),)),
    ("foreach", "foreach_inner_second", (2,), "linear", ((T("foreach_inner_first", 2),),)),
    ("foreach", "end", (), "linear", ((T("foreach_join"),),)),
    ("nested_foreach", "foreach_split_y", (2,), "foreach-child", ((T("foreach_split_x"),),)),
    ("nested_foreach", "foreach_split_z", (2, 1), "foreach-child",
     ((T("foreach_split_y", 2),),)),
    ("nested_foreach", "foreach_inner", (2, 1, 5), "foreach-child",
     ((T("foreach_split_z", 2, 1),),)),
    ("switch", "b", (), "linear", ((T("switch_step"),),)),
    ("switch", "end", (), "linear", ((T("a"), T("b"), T("c")),)),
    ("switch_in_branch", "join", (), "join-static", ((T("c"), T("d")), (T("b"),))),
    ("foreach_in_switch", "do_work", (0,), "foreach-child", ((T("process_items"),),)),
    ("foreach_in_switch", "end", (), "linear", ((T("join_work"), T("skip_processing")),)),
    ("recursive_switch", "loop_step", (), "linear", ((T("start"),),)),
    ("parameters_decorators", "evaluate", (), "linear", ((T("train"),),)),
    ("inheritance", "train", (), "linear", ((T("start"),),)),
]


@pytest.mark.parametrize(("fixture", "step", "path", "kind", "slots"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_inputs_without_foreach_join(fixture: str, step: str, path: tuple[int, ...], kind: str,
                                     slots: tuple[tuple[TaskRef, ...], ...]) -> None:
    plan = resolve_inputs(graph(fixture), step, path, no_splits)
    assert plan.kind == kind
    assert plan.slots == slots


def test_foreach_child_names_its_split_task() -> None:
    plan = resolve_inputs(graph("nested_foreach"), "foreach_inner", (2, 1, 5), no_splits)
    assert plan.split == T("foreach_split_z", 2, 1)


def test_foreach_join_reads_num_splits_from_the_split_task() -> None:
    plan = resolve_inputs(graph("foreach"), "foreach_join", (),
                          splits({T("foreach_split"): 3}))
    assert plan == InputPlan(
        "join-foreach",
        tuple((T("foreach_inner_second", i),) for i in range(3)),
        T("foreach_split"),
    )


@pytest.mark.parametrize(("step", "path", "split", "body_last"), [
    ("foreach_join_z", (2, 1), T("foreach_split_z", 2, 1), "foreach_inner"),
    ("foreach_join_y", (2,), T("foreach_split_y", 2), "foreach_join_z"),
    ("foreach_join_x", (), T("foreach_split_x"), "foreach_join_y"),
])
def test_nested_foreach_joins(step: str, path: tuple[int, ...], split: TaskRef,
                              body_last: str) -> None:
    plan = resolve_inputs(graph("nested_foreach"), step, path, splits({split: 4}))
    assert plan.kind == "join-foreach"
    assert plan.split == split
    assert plan.slots == tuple((TaskRef(body_last, (*path, i)),) for i in range(4))


def test_foreach_join_inside_switch() -> None:
    plan = resolve_inputs(graph("foreach_in_switch"), "join_work", (),
                          splits({T("process_items"): 2}))
    assert plan.slots == ((T("do_work", 0),), (T("do_work", 1),))


@pytest.mark.parametrize(("fixture", "depths"), [
    ("linear", {"start": 0, "a": 0, "end": 0}),
    ("foreach", {"foreach_split": 0, "foreach_inner_first": 1, "foreach_inner_second": 1,
                 "foreach_join": 0, "end": 0}),
    ("nested_foreach", {"foreach_split_x": 0, "foreach_split_y": 1, "foreach_split_z": 2,
                        "foreach_inner": 3, "foreach_join_z": 2, "foreach_join_y": 1,
                        "foreach_join_x": 0}),
    ("nested_branches", {"a": 0, "aa": 0, "a_join": 0, "join": 0}),
    ("foreach_in_switch", {"do_work": 1, "join_work": 0, "skip_processing": 0}),
])
def test_foreach_depth(fixture: str, depths: dict[str, int]) -> None:
    g = graph(fixture)
    assert {step: foreach_depth(g, step) for step in depths} == depths


def test_path_that_does_not_fit_the_step_is_refused() -> None:
    g = graph("foreach")
    with pytest.raises(ValueError, match="inside 1 foreach"):
        resolve_inputs(g, "foreach_inner_first", (), no_splits)
    with pytest.raises(ValueError, match="no step 'nope'"):
        resolve_inputs(g, "nope", (), no_splits)


@pytest.mark.parametrize(("text", "depth", "path"), [
    ("0", 0, ()), ("0", 1, (0,)), ("3", 1, (3,)), ("3.1", 2, (3, 1)), ("10.0.7", None, (10, 0, 7)),
])
def test_parse_task_path(text: str, depth: int | None, path: tuple[int, ...]) -> None:
    assert parse_task_path(text, depth) == path
    if depth is not None:
        assert format_task_path(path) == text


@pytest.mark.parametrize(("text", "depth"), [
    ("", None), ("01", None), ("3.", None), ("-1", None), ("a", None), ("3", 0), ("3", 2),
])
def test_bad_task_paths(text: str, depth: int | None) -> None:
    with pytest.raises(ValueError):
        parse_task_path(text, depth)


def test_task_ref_str() -> None:
    assert str(T("train", 3, 1)) == "train/3.1"
    assert T("end").task_id == "0"
