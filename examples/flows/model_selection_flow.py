"""Model selection: one model per feature set in parallel (foreach), the join keeps
the best model and its predictions.

A Metaflow flow: only the import line differs (`from metaflow import ...`).
Afterwards `examples/compare_runs.py` compares every run's choice, and
`examples/serve_model.py` serves the model of the latest good run.
"""

import math
import random

from kflow import FlowSpec, Parameter, step

FEATURES = ("x1", "x2", "x3")


def solve(matrix, vector):
    """Solve matrix @ w = vector (small, dense) by Gaussian elimination."""
    n = len(vector)
    a = [[*row, vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(n):
            if r != col and a[col][col]:
                factor = a[r][col] / a[col][col]
                a[r] = [v - factor * p for v, p in zip(a[r], a[col], strict=True)]
    return [a[i][n] / a[i][i] for i in range(n)]


def predict(model, row):
    """The model's prediction for one row (a dict of features)."""
    pairs = zip(model["features"], model["weights"], strict=True)
    return model["bias"] + sum(w * row[f] for f, w in pairs)


class ModelSelectionFlow(FlowSpec):
    """Fit a linear model on each feature set; keep the one with the best validation."""

    rows = Parameter("rows", default=300, help="rows of synthetic data")
    seed = Parameter("seed", default=11, help="random seed of the data")
    sabotage = Parameter("sabotage", default=False,
                         help="ship a broken model (to see serve_model.py fall back)")

    @step
    def start(self):
        """The data (y = 2*x1 - x2 + noise; x3 is noise) and the feature sets to try."""
        rng = random.Random(self.seed)
        data = []
        for _ in range(self.rows):
            row = {f: rng.uniform(-1, 1) for f in FEATURES}
            row["y"] = 2 * row["x1"] - row["x2"] + rng.gauss(0, 0.1)
            data.append(row)
        cut = int(len(data) * 0.8)
        self.train_rows, self.valid_rows = data[:cut], data[cut:]
        self.feature_sets = [["x1"], ["x2"], ["x1", "x2"], ["x1", "x3"]]
        self.next(self.fit, foreach="feature_sets")

    @step
    def fit(self):
        """Least squares on this branch's features; its validation error."""
        features = self.input
        xs = [[1.0] + [r[f] for f in features] for r in self.train_rows]
        ys = [r["y"] for r in self.train_rows]
        k = len(xs[0])
        xtx = [[sum(x[i] * x[j] for x in xs) for j in range(k)] for i in range(k)]
        xty = [sum(x[i] * y for x, y in zip(xs, ys, strict=True)) for i in range(k)]
        w = solve(xtx, xty)
        self.model = {"features": features, "bias": w[0], "weights": w[1:]}
        self.predictions = [predict(self.model, r) for r in self.valid_rows]
        pairs = zip(self.predictions, self.valid_rows, strict=True)
        self.mse = sum((p - r["y"]) ** 2 for p, r in pairs) / len(self.valid_rows)
        print(f"features {features}: validation MSE {self.mse:.4f}")
        self.next(self.choose)

    @step
    def choose(self, inputs):
        """Keep the best model and its predictions; a leaderboard of all of them."""
        best = min(inputs, key=lambda branch: branch.mse)
        self.model, self.predictions, self.mse = best.model, best.predictions, best.mse
        self.leaderboard = sorted(((b.mse, b.model["features"]) for b in inputs),
                                  key=lambda entry: entry[0])
        if self.sabotage:
            self.model = {**self.model, "weights": [math.nan] * len(self.model["weights"])}
        self.next(self.end)

    @step
    def end(self):
        """`run.data.model`, `run.data.predictions`, `run.data.leaderboard`."""
        print(f"chose {self.model['features']} (validation MSE {self.mse:.4f})")


if __name__ == "__main__":
    ModelSelectionFlow()
