"""Benchmark scenario: start -> end, each tiny; `end` stores `value`, unique per run.

Used by bench/client.py to read one artifact back from each of many runs. The value
is new on every run (the time in ns and the pid), so no content-addressed store or
client cache can share it between runs. The kflow twin (bench/flows/kflow/) differs
only in the import line.
"""

# isort: skip_file
import os
import time

from kflow import FlowSpec, step


class TinyFlow(FlowSpec):
    @step
    def start(self):
        self.started = time.time_ns()
        self.next(self.end)

    @step
    def end(self):
        self.value = f"{self.started}-{time.time_ns()}-{os.getpid()}"


if __name__ == "__main__":
    TinyFlow()
