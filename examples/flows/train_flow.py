"""Train several models in parallel and keep the best one.

A Metaflow flow: only the import line differs (`from metaflow import ...`).
"""

from kflow import (
    FlowSpec,
    Parameter,
    batch,
    catch,
    current,
    environment,
    resources,
    retry,
    schedule,
    step,
    timeout,
)


@schedule(daily=True)
class TrainFlow(FlowSpec):
    """Train one model per learning rate, pick the best by validation score."""

    learning_rates = Parameter(
        "learning_rates", default="0.01,0.1,0.5", help="comma-separated learning rates"
    )
    epochs = Parameter("epochs", default=3, help="training epochs per model")

    @step
    def start(self):
        """Split the work: one branch per learning rate."""
        self.rates = [float(r) for r in self.learning_rates.split(",")]
        self.next(self.train, foreach="rates")

    @retry(times=2)
    @batch(memory=2048, cpu=1)
    @timeout(minutes=30)
    @environment(vars={"OMP_NUM_THREADS": "1"})
    @step
    def train(self):
        """Fit a toy model with this branch's learning rate."""
        rate = self.input
        weight = 0.0
        for _ in range(self.epochs):
            weight += rate * (1.0 - weight)
        self.model = {"rate": rate, "weight": weight}
        self.score = 1.0 - abs(1.0 - weight)
        self.next(self.choose)

    @resources(memory=1024)
    @step
    def choose(self, inputs):
        """Keep the best model of all branches."""
        best = max(inputs, key=lambda branch: branch.score)
        self.model, self.score = best.model, best.score
        self.next(self.report)

    @catch(var="report_error")
    @step
    def report(self):
        """Say what was chosen (a failure here does not fail the run)."""
        print(f"run {current.run_id}: best rate {self.model['rate']} score {self.score:.3f}")
        self.next(self.end)

    @step
    def end(self):
        """The model is in `run.data.model`."""


if __name__ == "__main__":
    TrainFlow()
