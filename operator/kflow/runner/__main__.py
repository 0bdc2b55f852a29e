"""``python -m kflow.runner ...``: run one task (see `kflow.runner` for the contract)."""

from __future__ import annotations

from kflow.runner.cli import leave, main

if __name__ == "__main__":
    leave(main())
