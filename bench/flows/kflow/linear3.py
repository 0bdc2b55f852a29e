"""Benchmark scenario: three steps in a line, start -> middle -> end, each one tiny.

The time between the steps is the orchestrator's: the user code takes
microseconds. When BENCH_MARKS names a file, each step appends
"<step> <start|end> <time.time()> <pid>" lines to it (the kflow runner
records the same moments itself). The kflow twin (bench/flows/kflow/)
differs only in the import line.
"""

# isort: skip_file
import os
import time

from kflow import FlowSpec, step


def mark(step_name, event):
    path = os.environ.get("BENCH_MARKS")
    if path:
        with open(path, "a") as out:
            out.write(f"{step_name} {event} {time.time():.6f} {os.getpid()}\n")


class Linear3Flow(FlowSpec):
    @step
    def start(self):
        mark("start", "start")
        self.value = 1
        mark("start", "end")
        self.next(self.middle)

    @step
    def middle(self):
        mark("middle", "start")
        self.value += 1
        mark("middle", "end")
        self.next(self.end)

    @step
    def end(self):
        mark("end", "start")
        assert self.value == 2, self.value
        mark("end", "end")


if __name__ == "__main__":
    Linear3Flow()
