"""The per-node code cache (kflow.runner.codecache): verified, atomic, shared; importing."""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path

import pytest

from kflow.packaging import build_package
from kflow.runner.codecache import cache_root, cached_package, import_flow
from kflow.runner.exitcodes import CodePackageError

FLOW = '''
from kflow import FlowSpec, step
import helper

class CacheFlow(FlowSpec):
    @step
    def start(self):
        self.x = helper.VALUE
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    raise SystemExit("the flow file ran as __main__")
'''


@pytest.fixture
def package(tmp_path: Path):  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir()
    (src / "cache_flow.py").write_text(FLOW)
    (src / "helper.py").write_text("VALUE = 42\n")
    return build_package(src / "cache_flow.py")


def test_cache_root(tmp_path: Path) -> None:
    assert cache_root({"KFLOW_CODE_CACHE": str(tmp_path)}) == tmp_path
    assert cache_root({"HOME": "/home/u"}) == Path("/home/u/.cache/kflow/code")


def test_miss_then_hit(tmp_path: Path, package) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []

    def fetch() -> bytes:
        calls.append(1)
        return package.data

    root = tmp_path / "cache"
    first, hit1 = cached_package(package.sha256, root, fetch)
    second, hit2 = cached_package(package.sha256, root, fetch)
    assert (hit1, hit2) == (False, True)
    assert first == second == root / package.sha256
    assert (first / "cache_flow.py").is_file() and (first / "helper.py").is_file()
    assert len(calls) == 1
    assert sorted(p.name for p in root.iterdir()) == [package.sha256]  # no leftovers


def test_digest_mismatch_unpacks_nothing(tmp_path: Path, package) -> None:  # type: ignore[no-untyped-def]
    other = hashlib.sha256(b"other").hexdigest()
    root = tmp_path / "cache"
    with pytest.raises(CodePackageError, match="digest mismatch"):
        cached_package(other, root, lambda: package.data)
    assert list(root.iterdir()) == []


def test_garbage_is_a_code_package_error(tmp_path: Path) -> None:
    data = b"not a tarball"
    with pytest.raises(CodePackageError, match=r"cannot be unpacked|not"):
        cached_package(hashlib.sha256(data).hexdigest(), tmp_path, lambda: data)


def test_concurrent_tasks_share_one_copy(tmp_path: Path, package) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "cache"
    barrier = threading.Barrier(8)
    results: list[Path] = []
    errors: list[BaseException] = []

    def fetch() -> bytes:
        return package.data

    def task() -> None:
        barrier.wait()
        try:
            results.append(cached_package(package.sha256, root, fetch)[0])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=task) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert set(results) == {root / package.sha256}
    assert sorted(p.name for p in root.iterdir()) == [package.sha256]
    assert (root / package.sha256 / "helper.py").read_text() == "VALUE = 42\n"


def test_import_flow_not_as_main(tmp_path: Path, package) -> None:  # type: ignore[no-untyped-def]
    code_dir, _ = cached_package(package.sha256, tmp_path, lambda: package.data)
    try:
        flow_cls = import_flow(code_dir, "cache_flow.py", "CacheFlow")
        assert flow_cls.__name__ == "CacheFlow"
        assert flow_cls.__module__ == "cache_flow"
        assert sys.modules["cache_flow"].__name__ == "cache_flow"
        with pytest.raises(CodePackageError, match=r"no flow class Nope .*CacheFlow"):
            import_flow(code_dir, "cache_flow.py", "Nope")
        with pytest.raises(CodePackageError, match="not in the code package"):
            import_flow(code_dir, "missing.py", "CacheFlow")
    finally:
        for name in ("cache_flow", "helper"):
            sys.modules.pop(name, None)
        sys.path[:] = [p for p in sys.path if p != str(code_dir.resolve())]


def test_broken_flow_file_is_a_code_package_error(tmp_path: Path) -> None:
    (tmp_path / "broken_flow_xyz.py").write_text("import does_not_exist_anywhere\n")
    try:
        with pytest.raises(CodePackageError, match="ModuleNotFoundError"):
            import_flow(tmp_path, "broken_flow_xyz.py", "F")
        assert "broken_flow_xyz" not in sys.modules
    finally:
        sys.path[:] = [p for p in sys.path if p != str(tmp_path.resolve())]
