"""Continuous delivery: serve the model of the latest successful run of
ModelSelectionFlow — after a sanity test; when that fails, fall back to the newest
older run whose model passes.

    eval "$(kflow cluster env)"
    python examples/serve_model.py          # prints the run served and a prediction

A Metaflow script: only the import line differs (`from metaflow import ...`).
"""

import math
import sys

from kflow import Flow, namespace

CHECK_ROWS = [{"x1": 0.5, "x2": -0.5, "x3": 0.0}, {"x1": -1.0, "x2": 1.0, "x3": 0.3}]


def predict(model, row):
    pairs = zip(model["features"], model["weights"], strict=True)
    return model["bias"] + sum(w * row[f] for f, w in pairs)


def sane(model):
    """The model predicts finite values close to the known truth on fixed rows."""
    for row in CHECK_ROWS:
        value = predict(model, row)
        if not math.isfinite(value) or abs(value - (2 * row["x1"] - row["x2"])) > 0.5:
            return False
    return True


def load_model():
    """(run, model) of the newest successful run whose model passes `sane`."""
    namespace(None)
    for run in Flow("ModelSelectionFlow"):             # newest first
        if not run.successful:
            continue
        model = run.data.model
        if sane(model):
            return run, model
        print(f"run {run.id}: its model fails the sanity test; trying an older run")
    raise SystemExit("no successful run of ModelSelectionFlow has a sane model")


def main():
    run, model = load_model()
    print(f"serving the model of run {run.id} (features {','.join(model['features'])})")
    print(f"prediction for {CHECK_ROWS[0]}: {predict(model, CHECK_ROWS[0]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
