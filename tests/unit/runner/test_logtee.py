"""The fd-level tee (kflow.runner.logtee): print, raw fd writes and subprocesses all land.

Run in a child interpreter: pytest's own capturing replaces `sys.stdout`,
which would hide what a real process does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r'''
import os, subprocess, sys
from kflow.runner.logtee import FdTee

logs = {"stdout": open(sys.argv[1] + ".out", "wb"), "stderr": open(sys.argv[1] + ".err", "wb")}

def broken(data):
    raise OSError("store down")

sinks = {name: f.write for name, f in logs.items()}
if sys.argv[2] == "broken":
    sinks["stdout"] = broken
tee = FdTee(sinks).start()
print("from print")
print("to stderr", file=sys.stderr)
os.write(1, b"raw fd 1\n")
subprocess.run(["sh", "-c", "echo from child; echo child err >&2"], check=True)
errors = tee.stop()
print("after", [str(e) for e in errors])
'''


def run(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess[str], str, str]:
    base = tmp_path / "log"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(base), mode],
                          capture_output=True, text=True, timeout=30, check=True)
    out = base.with_suffix(".out").read_text() if mode != "broken" else ""
    return proc, out, base.with_suffix(".err").read_text()


def test_everything_reaches_the_sink_and_the_console(tmp_path: Path) -> None:
    proc, out, err = run(tmp_path, "ok")
    assert out == "from print\nraw fd 1\nfrom child\n"
    assert err == "to stderr\nchild err\n"
    assert proc.stdout == "from print\nraw fd 1\nfrom child\nafter []\n"
    assert proc.stderr == "to stderr\nchild err\n"


def test_a_failing_sink_does_not_stop_the_console(tmp_path: Path) -> None:
    proc, _, err = run(tmp_path, "broken")
    assert proc.stdout == "from print\nraw fd 1\nfrom child\nafter ['store down']\n"
    assert err == "to stderr\nchild err\n"
