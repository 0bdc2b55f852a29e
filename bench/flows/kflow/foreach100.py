"""Benchmark scenario: a foreach of `width` (100) tiny tasks, joined.

start -> body (foreach over range(width)) -> join -> end. Both systems run at
most 16 body tasks at once by default (Metaflow's --max-workers, kflow's
maxParallelism). When BENCH_MARKS names a file, each task appends
"<step> <start|end> <time.time()> <pid>" lines to it. The kflow twin
(bench/flows/kflow/) differs only in the import line.
"""

# isort: skip_file
import os
import time

from kflow import FlowSpec, Parameter, step


def mark(step_name, event):
    path = os.environ.get("BENCH_MARKS")
    if path:
        with open(path, "a") as out:
            out.write(f"{step_name} {event} {time.time():.6f} {os.getpid()}\n")


class Foreach100Flow(FlowSpec):
    width = Parameter("width", default=100, help="how many body tasks")

    @step
    def start(self):
        mark("start", "start")
        self.items = list(range(self.width))
        mark("start", "end")
        self.next(self.body, foreach="items")

    @step
    def body(self):
        mark("body", "start")
        self.square = self.input * self.input
        mark("body", "end")
        self.next(self.join)

    @step
    def join(self, inputs):
        mark("join", "start")
        self.total = sum(i.square for i in inputs)
        mark("join", "end")
        self.next(self.end)

    @step
    def end(self):
        mark("end", "start")
        assert self.total == sum(i * i for i in range(self.width)), self.total
        mark("end", "end")


if __name__ == "__main__":
    Foreach100Flow()
