"""The code package is reproducible, holds the right files and unpacks to them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kflow import packaging
from kflow.packaging import CodePackage, build_package, extract_package, package_key

FILES = {
    "train.py": "from kflow import FlowSpec, step\n\nclass TrainFlow(FlowSpec):\n    pass\n",
    "helpers/__init__.py": "",
    "helpers/features.py": "def features():\n    return [1, 2, 3]\n",
    "helpers/deep/model.py": "MODEL = 'gbm'\n",
    "README.md": "# not packaged by default\n",
    "data/train.csv": "a,b\n1,2\n",
    "configs/prod.yaml": "alpha: 0.5\n",
    "configs/nested/dev.yaml": "alpha: 0.1\n",
}
DEFAULT_FILES = ("helpers/__init__.py", "helpers/deep/model.py", "helpers/features.py",
                 "train.py")


def write_tree(root: Path, files: dict[str, str], order: list[str] | None = None) -> Path:
    for rel in order or list(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[rel])
    return root / "train.py"


def members(package: CodePackage) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(package.data), mode="r:gz") as tar:
        return {info.name: info for info in tar.getmembers()}


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "project", FILES)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


# --- what goes in -------------------------------------------------------------------


def test_default_is_the_flow_file_and_python_files_beside_it(flow: Path) -> None:
    package = build_package(flow)
    assert package.files == DEFAULT_FILES
    assert package.flow_file == "train.py"
    assert package.size == len(package.data)
    assert package.sha256 == hashlib.sha256(package.data).hexdigest()
    assert package.warnings == ()
    assert sorted(members(package)) == sorted([*DEFAULT_FILES, packaging.MANIFEST_PATH])


def test_manifest_lists_the_files_and_the_flow_file(flow: Path) -> None:
    package = build_package(flow)
    assert packaging.read_manifest(package.data) == {
        "version": 1, "flowFile": "train.py", "files": list(DEFAULT_FILES)}


@pytest.mark.parametrize("skipped", [
    "__pycache__/train.cpython-311.py", ".git/hooks/post.py", ".hidden/secret.py",
    "node_modules/x/y.py", "helpers/__pycache__/features.py", "venv/lib/site.py",
    ".venv/lib/python3.11/site-packages/numpy/core.py", "build/.tox/py311/x.py", ".dotfile.py",
])
def test_excluded_places(flow: Path, skipped: str) -> None:
    write_tree(flow.parent, {skipped: "x = 1\n"})
    assert build_package(flow).files == DEFAULT_FILES


def test_a_virtualenv_under_any_name_is_skipped(flow: Path) -> None:
    write_tree(flow.parent, {"myenv/pyvenv.cfg": "home = /usr\n",
                             "myenv/lib/python3.11/site.py": "x = 1\n",
                             "condaenv/conda-meta/history": "",
                             "condaenv/lib/thing.py": "x = 1\n"})
    assert build_package(flow).files == DEFAULT_FILES


def test_include_patterns(flow: Path) -> None:
    package = build_package(flow, include=["data/*.csv", "configs/**/*.yaml", "README.md"])
    assert package.files == tuple(sorted([*DEFAULT_FILES, "data/train.csv", "configs/prod.yaml",
                                          "configs/nested/dev.yaml", "README.md"]))
    assert package.warnings == ()


def test_include_a_directory_takes_its_files(flow: Path) -> None:
    write_tree(flow.parent, {"configs/__pycache__/x.pyc": ""})
    package = build_package(flow, include=["configs"])
    assert {"configs/prod.yaml", "configs/nested/dev.yaml"} <= set(package.files)
    assert "configs/__pycache__/x.pyc" not in package.files


def test_include_reaches_a_hidden_directory_only_when_named(flow: Path) -> None:
    write_tree(flow.parent, {".config/app.yaml": "a: 1\n"})
    assert ".config/app.yaml" not in build_package(flow, include=["**/*.yaml"]).files
    assert ".config/app.yaml" in build_package(flow, include=[".config/*.yaml"]).files


def test_include_matching_nothing_warns(flow: Path) -> None:
    package = build_package(flow, include=["data/*.parquet"])
    assert package.files == DEFAULT_FILES
    assert len(package.warnings) == 1
    assert "'data/*.parquet' matched no file" in package.warnings[0]


@pytest.mark.parametrize("pattern", ["../secrets/*", "/etc/passwd", "data/../../x", ""])
def test_include_outside_the_flow_directory_is_refused(flow: Path, pattern: str) -> None:
    with pytest.raises(ValueError, match="relative to the flow's directory"):
        build_package(flow, include=[pattern])


def test_missing_flow_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="flow file not found"):
        build_package(tmp_path / "nope.py")


def test_flow_file_in_a_subdirectory_packages_that_directory(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pipelines/train.py": "x = 1\n", "pipelines/lib.py": "y = 2\n",
                          "other.py": "z = 3\n"})
    package = build_package(tmp_path / "pipelines" / "train.py")
    assert package.files == ("lib.py", "train.py")
    assert package.flow_file == "train.py"


def test_oversized_python_file_is_left_out_with_a_warning(flow: Path) -> None:
    big = flow.parent / "helpers" / "generated_table.py"
    with big.open("wb") as handle:  # sparse: no time spent writing 11 MB
        handle.truncate(11 * 1024 * 1024)
    package = build_package(flow)
    assert package.files == DEFAULT_FILES
    assert "left out helpers/generated_table.py (11.0 MB)" in package.warnings[0]


def test_large_package_warns(flow: Path) -> None:
    rng = random.Random(7)  # incompressible bytes: the package really is large
    (flow.parent / "data" / "blob.bin").write_bytes(rng.randbytes(300_000))
    package = build_package(flow, include=["data/blob.bin"], warn_size=200_000)
    assert package.size > 200_000
    assert len(package.warnings) == 1
    warning = package.warnings[0]
    assert "over 0.2 MB" in warning and "data/blob.bin (0.3 MB)" in warning
    assert "every step pod downloads it" in warning
    assert packaging.WARN_SIZE == 50 * 1024 * 1024


# --- reproducible --------------------------------------------------------------------


def test_same_code_same_sha_whatever_order_mtime_and_umask(tmp_path: Path) -> None:
    first = build_package(write_tree(tmp_path / "a", FILES))
    order = list(FILES)
    random.Random(3).shuffle(order)
    old = os.umask(0o077)
    try:
        second_flow = write_tree(tmp_path / "b", FILES, order)
    finally:
        os.umask(old)
    for number, path in enumerate(sorted((tmp_path / "b").rglob("*"))):
        os.utime(path, (1_000_000 + number * 7919, 2_000_000 + number * 104729))
    second = build_package(second_flow)
    assert second.data == first.data
    assert second.sha256 == first.sha256


def test_content_change_changes_the_sha(flow: Path) -> None:
    before = build_package(flow).sha256
    (flow.parent / "helpers" / "features.py").write_text("def features():\n    return []\n")
    assert build_package(flow).sha256 != before


def test_a_new_file_or_an_include_changes_the_sha(flow: Path) -> None:
    before = build_package(flow).sha256
    assert build_package(flow, include=["data/*.csv"]).sha256 != before
    (flow.parent / "helpers" / "more.py").write_text("")
    assert build_package(flow).sha256 != before


def test_entries_are_normalised(flow: Path, umask: None) -> None:
    script = flow.parent / "helpers" / "run.py"
    script.write_text("#!/usr/bin/env python\n")
    script.chmod(0o700)
    (flow.parent / "helpers" / "features.py").chmod(0o600)
    infos = members(build_package(flow))
    assert [name for name in infos] == sorted(infos)  # entries sorted, files only
    for info in infos.values():
        assert info.isreg()
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (
            packaging.MTIME, 0, 0, "", "")
    assert infos["helpers/run.py"].mode == 0o755
    assert infos["helpers/features.py"].mode == 0o644


def test_gzip_header_has_no_time_and_no_name(flow: Path) -> None:
    data = build_package(flow).data
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] & 0x08 == 0          # FNAME flag unset
    assert data[4:8] == b"\0\0\0\0"     # MTIME zero
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
        gz.read()
        assert gz.mtime == 0


# --- unpacking -----------------------------------------------------------------------


def test_extract_gives_the_same_files(flow: Path, tmp_path: Path) -> None:
    package = build_package(flow, include=["configs/**/*.yaml"])
    flow_file = extract_package(package.data, package.sha256, tmp_path / "out")
    assert flow_file == tmp_path / "out" / "train.py"
    for rel in package.files:
        assert (tmp_path / "out" / rel).read_bytes() == (flow.parent / rel).read_bytes()
    manifest = json.loads((tmp_path / "out" / packaging.MANIFEST_PATH).read_text())
    assert manifest["files"] == list(package.files)


def test_extract_refuses_a_package_with_another_digest(flow: Path, tmp_path: Path) -> None:
    package = build_package(flow)
    with pytest.raises(ValueError, match="digest mismatch"):
        extract_package(package.data, "0" * 64, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_package_key() -> None:
    sha = "ab" * 32
    assert package_key(sha) == f"code/{sha}.tar.gz"
    with pytest.raises(ValueError, match="not a sha256"):
        package_key("../../etc")


def test_package_key_property(flow: Path) -> None:
    package = build_package(flow)
    assert package.key == f"code/{package.sha256}.tar.gz"
