"""`leave`: the task process ends without the interpreter's teardown, yet as Python
would for the step: its threads finish, its atexit handlers run, output is flushed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import atexit, sys, threading, time
    from kflow.runner.cli import leave

    def late():
        time.sleep(0.2)
        print("thread done", flush=True)

    threading.Thread(target=late).start()
    atexit.register(lambda: print("atexit ran"))
    print("buffered", end="")
    sys.stderr.write("err buffered")
    leave(3)
""")


def test_leave_keeps_threads_atexit_and_output_and_the_code() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 3
    assert done.stdout.splitlines() == ["bufferedthread done", "atexit ran"]
    assert done.stderr == "err buffered"
