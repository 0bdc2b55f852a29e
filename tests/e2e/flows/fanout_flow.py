"""A foreach of `width` short tasks: many pods in a burst."""

from kflow import FlowSpec, Parameter, step


class FanoutFlow(FlowSpec):
    """start → body (foreach over range(width)) → gather → end."""

    width = Parameter("width", default=12, help="how many body tasks")

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.square = self.input * self.input
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print(f"total {self.total}")


if __name__ == "__main__":
    FanoutFlow()
