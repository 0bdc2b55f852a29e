"""Command line of the process node (the cluster supervisor depends on it; keep it stable)::

    python -m kflow.cluster.node --kubeconfig PATH --node-name NAME --state-dir DIR \\
        --logs-port PORT --tls-cert PATH --tls-key PATH [--image-map PATH]

`--image-map` defaults to env `KFLOW_IMAGE_MAP` (see `kflow.cluster.node.images`).
Logs go to stderr with UTC timestamps; `KFLOW_NODE_LOG_LEVEL` (default INFO) sets the
level. Exits 0 after SIGTERM/SIGINT once every pod process is stopped.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from kflow.cluster.node.agent import Agent, NodeOptions
from kflow.cluster.node.images import ENV_VAR


def parse_args(argv: Sequence[str] | None = None) -> NodeOptions:
    parser = argparse.ArgumentParser(
        prog="python -m kflow.cluster.node",
        description="kflow's process node: kubelet + container runtime as local processes",
    )
    parser.add_argument("--kubeconfig", required=True, help="admin kubeconfig (self-contained)")
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--logs-port", required=True, type=int, help="HTTPS port for kubectl logs")
    parser.add_argument("--tls-cert", required=True, help="serving cert for the logs endpoint")
    parser.add_argument("--tls-key", required=True)
    parser.add_argument(
        "--image-map", default=None, help=f"YAML image map (default: env {ENV_VAR})"
    )
    args = parser.parse_args(argv)
    return NodeOptions(
        kubeconfig=args.kubeconfig,
        node_name=args.node_name,
        state_dir=args.state_dir.resolve(),
        logs_port=args.logs_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        image_map=args.image_map or os.environ.get(ENV_VAR) or None,
    )


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s [%(threadName)s] %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(os.environ.get("KFLOW_NODE_LOG_LEVEL", "INFO").upper())
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    setup_logging()
    try:
        agent = Agent(options)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        logging.getLogger("kflow.cluster.node").error("cannot start the node: %s", exc)
        return 2
    return agent.run()


if __name__ == "__main__":
    sys.exit(main())
