"""The linter over the shared fixtures: every broken flow gives exactly its one error."""

from __future__ import annotations

import pytest

from kflow import FlowSpec, step
from kflow.graph import build_graph
from kflow.lint import InvalidGraphException, LintError, check, ensure_valid
from tests.fixtures.flows import broken_names, expectation, good_names, load_flow

# Which rule each broken fixture breaks (a rule per fixture; some rules have several).
RULES = {
    "broken/bad_step_name": "step-name",
    "broken/catch_on_foreach": "catch-placement",
    "broken/constant_assigned": "constant-artifact-clash",
    "broken/cycle": "cycle",
    "broken/empty_foreach": "empty-foreach",
    "broken/end_with_next": "end-has-next",
    "broken/foreach_not_literal": "invalid-transition",
    "broken/foreach_two_targets": "invalid-transition",
    "broken/inputs_inside_branch": "join-not-at-split",
    "broken/inputs_on_non_join": "join-without-split",
    "broken/join_without_inputs": "join-needed",
    "broken/join_wrong_count": "join-count",
    "broken/missing_end": "missing-end",
    "broken/missing_next": "missing-next",
    "broken/missing_start": "missing-start",
    "broken/next_not_a_step": "invalid-transition",
    "broken/next_not_last": "next-not-last",
    "broken/not_a_step": "unknown-transition",
    "broken/orphan_step": "orphan",
    "broken/parameter_assigned": "parameter-artifact-clash",
    "broken/parameter_hidden_by_step": "parameter-step-clash",
    "broken/parameter_reserved": "parameter-reserved",
    "broken/reserved_step_name": "reserved-name",
    "broken/split_and_join": "split-and-join",
    "broken/start_has_incoming": "start-has-incoming",
    "broken/switch_into_join": "switch-into-join",
    "broken/switch_key_not_literal": "invalid-transition",
    "broken/switch_one_case": "switch-cases",
    "broken/switch_without_condition": "switch-condition",
    "broken/too_many_args": "num-args",
    "broken/two_next": "multiple-next",
    "broken/unbalanced_split": "end-before-join",
    "broken/unknown_keyword": "invalid-transition",
    "broken/unknown_transition": "unknown-transition",
    "broken/unrelated_join": "join-unrelated",
}


def errors_of(name: str) -> list[LintError]:
    flow = load_flow(name)
    return check(build_graph(flow), flow)


def test_every_broken_fixture_is_listed() -> None:
    assert set(broken_names()) == set(RULES)
    assert len(RULES) >= 12


@pytest.mark.parametrize("name", good_names())
def test_good_flows_have_no_errors(name: str) -> None:
    assert errors_of(name) == []


@pytest.mark.parametrize("name", broken_names())
def test_broken_flow_gives_its_error(name: str) -> None:
    expected = expectation(name)
    errors = errors_of(name)
    assert len(errors) == 1, "\n".join(map(str, errors))  # one mistake, one error
    error = errors[0]
    assert (error.file, error.line, error.step) == (str(expected.file), expected.line,
                                                    expected.step), str(error)
    assert expected.text in error.message, str(error)
    assert error.rule == RULES[name]
    assert error.hint, "every error says what to do"


def test_error_prints_file_line_step_message_and_hint() -> None:
    (error,) = errors_of("broken/join_wrong_count")
    expected = expectation("broken/join_wrong_count")
    assert str(error) == (
        f"{expected.file}:{expected.line}: step 'join': The join step 'join' has 2 incoming "
        "branches but closes a split of 3 (a, b, c). Add self.next(self.join) to 'c'.")


def test_error_about_the_whole_flow_has_no_step() -> None:
    (error,) = errors_of("broken/missing_start")
    assert error.step is None
    assert str(error).startswith(f"{error.file}:{error.line}: The flow MissingStartFlow has no")


def test_unknown_transition_suggests_the_closest_step() -> None:
    (error,) = errors_of("broken/unknown_transition")
    assert "Did you mean 'train'?" in error.hint


def test_a_method_without_step_is_named_as_such() -> None:
    (error,) = errors_of("broken/not_a_step")
    assert "decorate it with @step" in error.hint


def test_ensure_valid_raises_every_error() -> None:
    flow = load_flow("broken/cycle")
    with pytest.raises(InvalidGraphException) as raised:
        ensure_valid(build_graph(flow), flow)
    assert [e.rule for e in raised.value.errors] == ["cycle"]
    assert str(raised.value) == str(raised.value.errors[0])
    graph = build_graph(load_flow("branch"))
    assert ensure_valid(graph, load_flow("branch")) is graph


def test_independent_mistakes_are_all_reported() -> None:
    class ManyMistakesFlow(FlowSpec):
        @step
        def start(self) -> None:
            self.next(self.Upper)

        @step
        def Upper(self) -> None:  # the mistake under test
            self.x = 1

        @step
        def name(self) -> None:  # type: ignore[override]
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    flow = ManyMistakesFlow
    rules = sorted(e.rule for e in check(build_graph(flow), flow))
    assert rules == ["missing-next", "reserved-name", "step-name"]


def test_without_the_flow_class_parameter_rules_are_skipped() -> None:
    graph = build_graph(load_flow("broken/parameter_assigned"))
    assert check(graph) == []
