"""The README's example flow is a valid flow (the docs must not rot)."""

from __future__ import annotations

import re
from pathlib import Path

from kflow import graph, lint
from tests.fixtures.flows import load_flow_file

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_flow_passes_every_check(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README shows no Python example"
    flow_file = tmp_path / "train.py"
    flow_file.write_text(blocks[0])
    flow_cls = load_flow_file(flow_file)
    flow_graph = graph.build_graph(flow_cls)
    assert lint.check(flow_graph, flow_cls) == []
    assert [s.type for s in flow_graph] == ["split-foreach", "linear", "join", "end"]
