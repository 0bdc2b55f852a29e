"""``python -m kflow.runner ...``: run one task (see `kflow.runner` for the contract)."""

from __future__ import annotations

import sys

from kflow.runner.cli import main

if __name__ == "__main__":
    sys.exit(main())
