"""Compare every run of ModelSelectionFlow: which feature set each run chose and how
well it did, best first — the seed's loop over the history, with the client API.

    eval "$(kflow cluster env)"      # or any kflow configuration
    python examples/compare_runs.py

A Metaflow script: only the import line differs (`from metaflow import ...`).
"""

from kflow import Flow, namespace


def main():
    namespace(None)                        # every user's runs
    rows = []
    for run in Flow("ModelSelectionFlow"):             # newest first
        if run.successful:
            rows.append((run.data.mse, run.id, run.data.model["features"], run.created_at))
        else:
            print(f"skipping {run.id}: {run.status}")
    for mse, run_id, features, created in sorted(rows):
        print(f"{run_id}  MSE {mse:.4f}  features {','.join(features):<9} "
              f"{created:%Y-%m-%d %H:%M:%S}")
    if rows:
        print(f"best: {sorted(rows)[0][1]}")


if __name__ == "__main__":
    main()
