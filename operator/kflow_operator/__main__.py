"""``python -m kflow_operator``: run kflow's kopf operator.

Owns: the command line and the start of ``kopf.run`` with `kflow_operator.handlers`
registered::

    python -m kflow_operator [--namespace NS ...| --all-namespaces]
                             [--liveness URL] [--verbose | --debug]

Namespaces: ``--namespace`` (repeatable), else ``KFLOW_WATCH_NAMESPACES``, else
``--all-namespaces`` must be given (watching the whole cluster is explicit). The
liveness endpoint (kopf's, default ``http://0.0.0.0:8081/healthz``; ``--liveness ""``
turns it off) answers 200 while the operator's event loop is alive. Settings come from
the environment (`kflow_operator.settings`); a bad value stops the start with exit
code 2 and a message naming the variable. The operator runs standalone (no kopf
peering): run one replica. It talks to the cluster with the in-cluster service account,
else ``KUBECONFIG``.
"""

from __future__ import annotations

import argparse
import sys

import kopf

from kflow_operator import settings

DEFAULT_LIVENESS = "http://0.0.0.0:8081/healthz"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kflow_operator",
                                     description="kflow's operator: runs FlowRuns as pods.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                       help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true",
                       help="watch every namespace")
    parser.add_argument("--liveness", default=DEFAULT_LIVENESS, metavar="URL",
                        help=f"liveness endpoint (default {DEFAULT_LIVENESS}; '' for none)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log more")
    parser.add_argument("--debug", action="store_true", help="log everything")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the operator until SIGINT/SIGTERM."""
    args = _parser().parse_args(argv)
    try:
        config = settings.from_env()
    except settings.SettingsError as exc:
        print(f"kflow-operator: {exc}", file=sys.stderr)
        return 2
    namespaces = tuple(args.namespace) or config.namespaces
    if not namespaces and not args.all_namespaces:
        print("kflow-operator: say which namespaces to watch: --namespace NS (repeatable), "
              "KFLOW_WATCH_NAMESPACES, or --all-namespaces", file=sys.stderr)
        return 2
    kopf.configure(verbose=args.verbose, debug=args.debug)
    import kflow_operator.handlers  # noqa: F401  (registers the handlers)

    kopf.run(standalone=True, clusterwide=not namespaces, namespaces=namespaces,
             liveness_endpoint=args.liveness or None, memo=kopf.Memo(config=config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
