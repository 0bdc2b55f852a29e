"""Where the control-plane binaries come from (no build runs here)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from kflow.cluster import binaries


def make_bin_dir(tmp_path: Path, names: tuple[str, ...]) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in names:
        path = bin_dir / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return bin_dir


def test_kflow_bin_dir_wins_and_nothing_is_built(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = make_bin_dir(tmp_path, (*binaries.ETCD_BINARIES, *binaries.K8S_BINARIES))
    monkeypatch.setenv("KFLOW_BIN_DIR", str(bin_dir))
    monkeypatch.setenv("KFLOW_CACHE_DIR", str(tmp_path / "cache"))
    progress = io.StringIO()
    found = binaries.resolve(progress, build=False)
    assert found.kube_apiserver == str(bin_dir / "kube-apiserver")
    assert found.etcd == str(bin_dir / "etcd")
    assert found.kubectl == str(bin_dir / "kubectl")
    assert progress.getvalue() == ""
    assert not (tmp_path / "cache").exists()


def test_missing_binaries_with_building_disabled_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFLOW_BIN_DIR", str(make_bin_dir(tmp_path, ("etcd",))))
    monkeypatch.setenv("KFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'empty'}:{Path(shutil.which('go') or '').parent}")
    with pytest.raises(binaries.BuildError, match="not built yet and building is disabled"):
        binaries.resolve(io.StringIO(), build=False)


def test_cache_key_changes_with_version_and_toolchain() -> None:
    a = binaries.cache_key("k8s", "v1.36.3", "go1.26.8")
    assert a.startswith("k8s-v1.36.3-go1.26.8-")
    assert a != binaries.cache_key("k8s", "v1.37.2", "go1.26.8")
    assert a != binaries.cache_key("k8s", "v1.36.3", "go1.27.3")


def test_cache_root_follows_the_environment(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KFLOW_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert binaries.cache_root() == tmp_path / "kflow"
    monkeypatch.setenv("KFLOW_CACHE_DIR", str(tmp_path / "x"))
    assert binaries.cache_root() == tmp_path / "x"
