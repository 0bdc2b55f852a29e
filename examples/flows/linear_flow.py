"""The article's linear flow: load data, train, evaluate — one step after another.

A Metaflow flow: only the import line differs (`from metaflow import ...`).
Run it:  python examples/flows/linear_flow.py run
Read it: from kflow import Flow; Flow("LinearFlow").latest_successful_run.data.score
"""

import random

from kflow import FlowSpec, Parameter, step


class LinearFlow(FlowSpec):
    """Fit y = a*x + b to noisy synthetic data and score it on held-out rows."""

    rows = Parameter("rows", default=200, help="rows of synthetic data")
    seed = Parameter("seed", default=7, help="random seed of the data")

    @step
    def start(self):
        """Make the data: y = 3x + 1 plus noise; 80% to train, 20% to validate."""
        rng = random.Random(self.seed)
        points = [(x, 3.0 * x + 1.0 + rng.gauss(0, 0.5))
                  for x in (rng.uniform(0, 10) for _ in range(self.rows))]
        cut = int(len(points) * 0.8)
        self.train_rows, self.valid_rows = points[:cut], points[cut:]
        self.next(self.train)

    @step
    def train(self):
        """Least squares for one feature."""
        n = len(self.train_rows)
        mean_x = sum(x for x, _ in self.train_rows) / n
        mean_y = sum(y for _, y in self.train_rows) / n
        var = sum((x - mean_x) ** 2 for x, _ in self.train_rows)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in self.train_rows) / var
        self.model = {"slope": slope, "intercept": mean_y - slope * mean_x}
        self.next(self.evaluate)

    @step
    def evaluate(self):
        """Mean squared error on the validation rows."""
        m = self.model
        errors = [(m["slope"] * x + m["intercept"] - y) ** 2 for x, y in self.valid_rows]
        self.score = sum(errors) / len(errors)
        print(f"model {m['slope']:.3f}x + {m['intercept']:.3f}, validation MSE {self.score:.3f}")
        self.next(self.end)

    @step
    def end(self):
        """The model is in `run.data.model`, its validation MSE in `run.data.score`."""


if __name__ == "__main__":
    LinearFlow()
