"""The supervisor's pure parts: state file, stop order, messages, CLI parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from kflow import cli
from kflow.cluster import components, processes, supervisor
from kflow.cluster.components import COMPONENTS, Layout


def test_every_component_is_stopped_exactly_once_and_the_node_first() -> None:
    flat = [name for group in supervisor.STOP_ORDER for name in group]
    assert sorted(flat) == sorted(COMPONENTS)
    assert supervisor.STOP_ORDER[0] == ("node",)
    assert supervisor.STOP_ORDER[-1] == ("etcd",)


def test_state_round_trips_through_its_file(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    state = supervisor.State(
        ports={"apiserver": 6443, "s3_s3": 9000},
        processes={"etcd": processes.ProcessRecord(pid=12, start_ticks=34)},
        k8s_version="v1.36.3", etcd_version="v3.6.16", kubectl="/b/kubectl", started_at=5.0,
    )
    state.save(layout)
    assert supervisor.State.load(layout) == state
    assert supervisor.State.load(Layout(tmp_path / "none")) is None


def test_a_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(supervisor.ClusterError, match=r"state.json is not valid JSON"):
        supervisor.State.load(Layout(tmp_path))


def test_component_error_names_component_reason_log_and_tail(tmp_path: Path) -> None:
    log = tmp_path / "etcd.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    error = supervisor.ComponentError("etcd", "the process exited", log)
    text = str(error)
    assert text.startswith("etcd failed to start: the process exited")
    assert "line 99" in text and "line 79" not in text
    assert str(log) in text


def test_report_tells_how_to_use_the_cluster(tmp_path: Path) -> None:
    state = supervisor.State(ports={"apiserver": 6443, "s3_s3": 9000}, k8s_version="v1.36.3")
    text = supervisor.Report(Layout(tmp_path), state, False, 3.2).describe()
    assert f"export KUBECONFIG={tmp_path / 'kubeconfig'}" in text
    assert "S3 endpoint: http://127.0.0.1:9000" in text
    assert str(tmp_path / "s3-credentials.json") in text
    assert f"node {components.NODE_NAME} Ready" in text


def test_default_dir_follows_name_and_environment(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.delenv("KFLOW_CLUSTER_DIR", raising=False)
    assert supervisor.default_dir("demo").parts[-3:] == (".kflow", "clusters", "demo")
    monkeypatch.setenv("KFLOW_CLUSTER_DIR", str(tmp_path))
    assert supervisor.default_dir("demo") == tmp_path


def test_status_of_a_folder_without_cluster(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cluster", "status", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert all(f"{name}" in out for name in COMPONENTS)
    assert "not started" in out


def test_env_of_a_folder_without_cluster_says_how_to_start_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cluster", "env", "--dir", str(tmp_path)]) == 1
    assert f"kflow cluster up --dir {tmp_path}" in capsys.readouterr().err


def test_only_the_s3_server_is_stopped_or_started_on_its_own(tmp_path: Path) -> None:
    with pytest.raises(supervisor.ClusterError, match=r"etcd cannot be stopped or started"):
        supervisor.stop_component(tmp_path, "etcd")
    with pytest.raises(supervisor.ClusterError, match=r"no cluster runs in .*kflow cluster up"):
        supervisor.start_component(tmp_path, "s3")


def test_start_component_leaves_a_running_one_and_stop_component_stops_it(
        tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    record = processes.start(["sleep", "60"], tmp_path / "sleep.log")
    state = supervisor.State(ports=processes.free_ports(components.PORT_NAMES),
                             processes={"s3": record})
    state.save(layout)
    supervisor.start_component(tmp_path, "s3")   # it runs: nothing started, nothing saved
    assert supervisor.State.load(layout) == state
    supervisor.stop_component(tmp_path, "s3", grace=0.0)
    assert not processes.alive(record)
