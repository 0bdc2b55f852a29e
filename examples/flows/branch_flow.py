"""A static branch: two independent feature sets, merged in a join."""

from kflow import FlowSpec, Parameter, kubernetes, step


class BranchFlow(FlowSpec):
    """Compute two feature sets side by side and merge them."""

    rows = Parameter("rows", default=100, help="rows of synthetic data")

    @step
    def start(self):
        self.data = list(range(self.rows))
        self.next(self.counts, self.sums)

    @kubernetes(cpu=0.5, memory=512)
    @step
    def counts(self):
        self.count = len(self.data)
        self.next(self.merge)

    @kubernetes(cpu=0.5, memory=512, node_selector={"kubernetes.io/os": "linux"})
    @step
    def sums(self):
        self.total = sum(self.data)
        self.next(self.merge)

    @step
    def merge(self, inputs):
        self.merge_artifacts(inputs, exclude=["data"])
        self.mean = self.total / self.count
        self.next(self.end)

    @step
    def end(self):
        print(f"mean of {self.count} rows: {self.mean}")


if __name__ == "__main__":
    BranchFlow()
