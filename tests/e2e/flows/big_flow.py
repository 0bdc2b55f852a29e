"""A step asking for more memory than the node has: it cannot be scheduled."""

from kflow import FlowSpec, batch, step


class BigFlow(FlowSpec):
    """start → train (@batch(memory=60000), ~59 GiB) → end."""

    @step
    def start(self):
        self.next(self.train)

    @batch(memory=60000, cpu=1)
    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BigFlow()
