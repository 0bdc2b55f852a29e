"""`python flow.py run | trigger`: options, the FlowRun asked for, following it (no cluster).

The Kubernetes side is a `FakeRuns` implementing `kflow.launch.RunsApi`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from kflow import Parameter, flowcli, launch
from kflow.exceptions import ParameterValueException
from kflow.flowspec import FlowSpec
from kflow.launch import RunRequest, flowrun_body, follow, parameter_values
from kflow.submit import SubmitError


class ParamFlow(FlowSpec):
    """Never run: only its parameters matter here."""

    alpha = Parameter("alpha", default=0.5, help="learning rate")
    width = Parameter("width", type=int, required=True)
    mode = Parameter("mode", default="full")


PARAMS = [ParamFlow.alpha, ParamFlow.width, ParamFlow.mode]


# --- parameters -----------------------------------------------------------------------


def test_given_values_are_checked_by_their_type_and_sent_as_given() -> None:
    assert parameter_values(PARAMS, {"alpha": "0.7", "width": "3"}, {}) == {
        "alpha": "0.7", "width": "3"}


def test_a_value_that_does_not_parse_is_an_error_naming_the_parameter() -> None:
    with pytest.raises(ParameterValueException, match="'width' must be a whole number"):
        parameter_values(PARAMS, {"width": "three"}, {})


def test_a_required_parameter_without_a_value_is_an_error() -> None:
    with pytest.raises(ParameterValueException, match="'width' is required"):
        parameter_values(PARAMS, {"alpha": "1"}, {})


def test_the_environment_variable_gives_a_value_the_command_line_did_not() -> None:
    assert parameter_values(PARAMS, {"alpha": "1"}, {"KFLOW_RUN_WIDTH": "8",
                                                     "KFLOW_RUN_ALPHA": "2"}) == {
        "alpha": "1", "width": "8"}


# --- the FlowRun ----------------------------------------------------------------------


def test_flowrun_body_generates_a_name_from_the_flow_and_records_the_user() -> None:
    body = flowrun_body(RunRequest("param-flow", "ml", "alice", {"width": "3"},
                                   ["a", "b", "a"], 4))
    assert body["apiVersion"] == "kflow.dev/v1alpha1" and body["kind"] == "FlowRun"
    meta = body["metadata"]
    assert meta["generateName"] == "param-flow-" and "name" not in meta
    assert meta["namespace"] == "ml"
    assert meta["annotations"] == {"kflow.dev/user": "alice"}
    assert meta["labels"]["kflow.dev/flow"] == "param-flow"
    assert body["spec"] == {"flowRef": {"name": "param-flow"}, "parameters": {"width": "3"},
                            "tags": ["a", "b"], "maxParallelism": 4}


def test_flowrun_body_with_a_name_and_nothing_else() -> None:
    body = flowrun_body(RunRequest("param-flow", "ml", "bob", name="try-1"))
    assert body["metadata"]["name"] == "try-1" and "generateName" not in body["metadata"]
    assert body["spec"] == {"flowRef": {"name": "param-flow"}}


# --- the command line -----------------------------------------------------------------


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What `flow.py trigger` would start; nothing talks to a cluster."""
    seen: list[dict[str, Any]] = []

    class NoApi:
        def __init__(self, settings: object) -> None:
            pass

        def close(self) -> None:
            pass

    def fake_launch(api: object, request: RunRequest, *, detach: bool, prog: str,
                    out: object = None) -> int:
        seen.append({"request": request, "detach": detach})
        return 0

    monkeypatch.setattr(launch, "KubeRunsApi", NoApi)
    monkeypatch.setattr(launch, "require_flow", lambda *args: None)
    monkeypatch.setattr(launch, "launch", fake_launch)
    monkeypatch.setenv("KFLOW_CONFIG", "")
    monkeypatch.setenv("KFLOW_NAMESPACE", "ml")
    monkeypatch.setenv("KFLOW_USER", "alice")
    return seen


def _main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        flowcli.main(ParamFlow, argv)
    return int(exited.value.code or 0)


def test_trigger_passes_parameters_tags_and_options(launched: list[dict[str, Any]]) -> None:
    code = _main(["trigger", "--width", "3", "--alpha", "0.7", "--tag", "x", "--tag", "y",
                  "--max-parallelism", "8", "--name", "try-1", "--detach"])
    assert code == 0
    request = launched[0]["request"]
    assert request == RunRequest("param-flow", "ml", "alice", {"alpha": "0.7", "width": "3"},
                                 ["x", "y"], 8, "try-1")
    assert launched[0]["detach"] is True


def test_an_unknown_option_is_a_usage_error_naming_the_parameters(
        launched: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["trigger", "--width", "3", "--colour", "red"]) == 2
    err = capsys.readouterr().err
    assert "unknown option(s) --colour red" in err
    assert "--alpha, --width, --mode" in err
    assert _main(["trigger", "--wid", "3"]) == 2  # no abbreviations
    assert launched == []


def test_a_bad_or_missing_value_exits_1_before_anything_starts(
        launched: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["trigger"]) == 1
    assert "parameter 'width' is required" in capsys.readouterr().err
    assert _main(["trigger", "--width", "x"]) == 1
    assert "'width' must be a whole number" in capsys.readouterr().err
    assert _main(["trigger", "--width", "1", "--max-parallelism", "0"]) == 2
    assert launched == []


def test_help_lists_the_flow_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--alpha FLOAT" in out and "learning rate (default: 0.5)" in out
    assert "--width INT" in out and "[required]" in out


def test_other_commands_still_reject_unknown_arguments() -> None:
    assert _main(["check", "--width", "3"]) == 2


# --- following a run ------------------------------------------------------------------


def _fr(phase: str | None, version: str, **status: Any) -> dict[str, Any]:
    run: dict[str, Any] = {"metadata": {"name": "r-1", "namespace": "ml",
                                        "resourceVersion": version}}
    if phase:
        run["status"] = {"phase": phase, **status}
    return run


class FakeRuns:
    """A `RunsApi` that replays scripted reads and watches."""

    def __init__(self, reads: list[dict[str, Any]],
                 watches: list[list[tuple[str, dict[str, Any]]]]) -> None:
        self.reads, self.watches = reads, watches
        self.created: list[dict[str, Any]] = []
        self.watched_from: list[str | None] = []

    def flow_exists(self, namespace: str, name: str) -> bool:
        return name == "deployed"

    def create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append(body)
        return {"metadata": {"name": "r-1", "namespace": body["metadata"]["namespace"]}}

    def get_run(self, namespace: str, name: str) -> dict[str, Any]:
        return self.reads.pop(0)

    def watch_run(self, namespace: str, name: str,
                  resource_version: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
        self.watched_from.append(resource_version)
        yield from self.watches.pop(0)


def test_follow_watches_from_each_read_and_reconnects_until_terminal() -> None:
    api = FakeRuns(reads=[_fr(None, "1"), _fr("Running", "5")],
                   watches=[[("MODIFIED", _fr("Pending", "2")),
                             ("MODIFIED", _fr("Running", "3"))],  # then a timeout / 410
                            [("MODIFIED", _fr("Succeeded", "6"))]])
    seen: list[str] = []
    run = follow(api, "ml", "r-1", lambda r: seen.append(r["metadata"]["resourceVersion"]))
    assert run["status"]["phase"] == "Succeeded"
    assert seen == ["1", "2", "3", "5", "6"]
    assert api.watched_from == ["1", "5"]


def test_follow_returns_at_once_for_a_finished_run_and_fails_on_deletion() -> None:
    assert follow(FakeRuns([_fr("Failed", "9")], []), "ml", "r-1", lambda r: None)[
        "metadata"]["resourceVersion"] == "9"
    api = FakeRuns([_fr("Running", "1")], [[("DELETED", _fr("Running", "2"))]])
    with pytest.raises(SubmitError, match="r-1 in namespace ml was deleted"):
        follow(api, "ml", "r-1", lambda r: None)


def test_launch_detached_prints_the_name_and_returns_0() -> None:
    api, out = FakeRuns([], []), io.StringIO()
    assert launch.launch(api, RunRequest("f", "ml", "u"), detach=True, prog="f.py", out=out) == 0
    assert "flowrun.kflow.dev/r-1 in namespace ml created (flow f)" in out.getvalue()
    assert api.created[0]["metadata"]["generateName"] == "f-"


@pytest.mark.parametrize(("phase", "code"), [("Succeeded", 0), ("Failed", 1), ("Stopped", 1)])
def test_launch_follows_to_the_outcome_and_exits_by_phase(phase: str, code: int) -> None:
    step = {"name": "start", "phase": phase, "tasks": {"total": 1, "succeeded": 1}}
    api = FakeRuns([_fr("Running", "1")], [[("MODIFIED", _fr(phase, "2", steps=[step]))]])
    out = io.StringIO()
    assert launch.launch(api, RunRequest("f", "ml", "u"), detach=False, prog="f.py",
                         out=out) == code
    text = out.getvalue()
    assert f"  start  {phase:<9}  1/1" in text
    assert f"FlowRun r-1 {phase}" in text


def test_ctrl_c_while_following_says_the_run_goes_on_and_exits_130() -> None:
    class Interrupted(FakeRuns):
        def watch_run(self, namespace: str, name: str,
                      resource_version: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
            raise KeyboardInterrupt
            yield  # a generator, like the real one

    out = io.StringIO()
    api = Interrupted([_fr("Running", "1")], [])
    assert launch.launch(api, RunRequest("f", "ml", "u"), detach=False, prog="f.py",
                         out=out) == 130
    assert "continues in the cluster" in out.getvalue()
    assert '{"spec":{"stop":true}}' in out.getvalue()


def test_trigger_of_a_flow_not_deployed_says_to_deploy_it() -> None:
    with pytest.raises(SubmitError, match=r"not deployed in namespace ml: deploy it first "
                       r"with `python f\.py deploy`"):
        launch.require_flow(FakeRuns([], []), "ml", "missing", "f.py")
    launch.require_flow(FakeRuns([], []), "ml", "deployed", "f.py")


def test_on_a_terminal_the_step_block_is_redrawn_in_place() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    steps = [[{"name": "start", "phase": "Running", "tasks": {"total": 1, "running": 1}}],
             [{"name": "start", "phase": "Succeeded", "tasks": {"total": 1, "succeeded": 1}}]]
    api = FakeRuns([_fr("Running", "1", steps=steps[0])],
                   [[("MODIFIED", _fr("Running", "2", steps=steps[0])),
                     ("MODIFIED", _fr("Succeeded", "3", steps=steps[1]))]])
    out = Terminal()
    assert launch.launch(api, RunRequest("f", "ml", "u"), detach=False, prog="f.py",
                         out=out) == 0
    text = out.getvalue()
    assert text.count("start  Running    0/1") == 1  # an unchanged status draws nothing
    assert "\x1b[1F\x1b[J  start  Succeeded  1/1\n" in text
