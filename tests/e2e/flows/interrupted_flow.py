"""A 3-way branch, then a 20-way foreach, every task napping a little: a run that lasts
long enough to be interrupted (the operator killed, the S3 server restarted)."""

import time

from kflow import FlowSpec, Parameter, step


class InterruptedFlow(FlowSpec):
    """start → a, b, c → merge → fan → square (one task per item) → gather → end."""

    width = Parameter("width", default=20, help="how many items the foreach goes over")
    nap = Parameter("nap", default=0.5, help="seconds a task sleeps (0.6 to 1.4 times this)")

    def doze(self, salt):
        time.sleep(self.nap * (0.6 + (salt % 5) * 0.2))

    @step
    def start(self):
        self.next(self.a, self.b, self.c)

    @step
    def a(self):
        self.doze(0)
        self.part = 1
        self.next(self.merge)

    @step
    def b(self):
        self.doze(2)
        self.part = 2
        self.next(self.merge)

    @step
    def c(self):
        self.doze(4)
        self.part = 3
        self.next(self.merge)

    @step
    def merge(self, inputs):
        self.parts = sorted(branch.part for branch in inputs)
        self.next(self.fan)

    @step
    def fan(self):
        self.items = list(range(self.width))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.doze(self.input)
        self.squared = self.input * self.input
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.total = sum(task.squared for task in inputs)
        self.parts = inputs[0].parts
        self.next(self.end)

    @step
    def end(self):
        print(f"parts {self.parts} total {self.total}")


if __name__ == "__main__":
    InterruptedFlow()
