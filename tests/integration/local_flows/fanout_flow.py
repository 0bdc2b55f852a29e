"""Local runs: a foreach whose tasks record when they ran (to check --max-workers)."""

import os
import time

from kflow import FlowSpec, Parameter, step


class FanoutFlow(FlowSpec):
    """start → body x width (each sleeps `nap` seconds) → join → end."""

    width = Parameter("width", default=8, help="how many body tasks")
    nap = Parameter("nap", default=0.5, help="seconds each body task sleeps")

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.began = time.time()
        time.sleep(self.nap)
        self.square = self.input * self.input
        self.pid = os.getpid()
        self.ended = time.time()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.spans = sorted((i.began, i.ended) for i in inputs)
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.total == sum(i * i for i in range(self.width)), self.total


if __name__ == "__main__":
    FanoutFlow()
