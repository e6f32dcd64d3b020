"""The ``incident-operator`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from . import logs

WATCH_ENV = "INCIDENT_OPERATOR_WATCH_NAMESPACES"


def watched_namespaces(args: argparse.Namespace) -> list[str]:
    """``-n`` (repeatable), else $INCIDENT_OPERATOR_WATCH_NAMESPACES (comma-separated)."""
    listed = args.namespace or os.environ.get(WATCH_ENV, "").split(",")
    return [name.strip() for name in listed if name.strip()]


def _run(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        os.environ["INCIDENT_OPERATOR_KUBECONFIG"] = args.kubeconfig
    if args.policy:
        os.environ["INCIDENT_OPERATOR_POLICY"] = args.policy
    namespaces = watched_namespaces(args)
    if not namespaces and not args.all_namespaces:
        print(
            f"incident-operator: say which namespaces to watch (-n NAME, or {WATCH_ENV}), "
            "or --all-namespaces (needs the cluster-wide RBAC overlay)",
            file=sys.stderr,
        )
        return 2
    logs.configure(args.log_level, args.log_format)
    from . import runtime

    host, _, port = args.ops_address.rpartition(":")
    options = runtime.Options(
        namespaces=namespaces,
        clusterwide=args.all_namespaces,
        ops_host=host or "0.0.0.0",
        ops_port=int(port),
        leader_election=not args.no_leader_election,
    )
    return asyncio.run(runtime.run(options))


def _crds(args: argparse.Namespace) -> int:
    from .crdgen import crd_files

    files = crd_files()
    if args.write:
        target = Path(args.write)
        target.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (target / name).write_text(content)
            print(f"wrote {target / name}")
    else:
        print("---\n".join(files.values()), end="")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .adapters.kube import KubeAdapter, load_api_client
    from .report import render_report

    kube = KubeAdapter(load_api_client(args.kubeconfig))
    body = asyncio.run(kube.get("incidents", args.namespace, args.name))
    print(render_report(body))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incident-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        help=f"watch this namespace (repeatable); default: ${WATCH_ENV} (comma-separated)",
    )
    run.add_argument(
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (needs the cluster-wide RBAC overlay)",
    )
    run.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster or $KUBECONFIG)")
    run.add_argument("--policy", help="response policy YAML (default: the playbook's values)")
    run.add_argument(
        "--ops-address",
        default=os.environ.get("INCIDENT_OPERATOR_OPS_ADDRESS", "127.0.0.1:0"),
        help="host:port of /healthz and /metrics (default: $INCIDENT_OPERATOR_OPS_ADDRESS, "
        "else a free loopback port, logged at start-up)",
    )
    run.add_argument(
        "--no-leader-election",
        action="store_true",
        default=os.environ.get("INCIDENT_OPERATOR_LEADER_ELECTION", "true") == "false",
        help="act at once, without the leader Lease: for exactly one replica",
    )
    run.add_argument("--standalone", action="store_true", help="accepted for compatibility")
    run.add_argument(
        "--log-level",
        default=os.environ.get("INCIDENT_OPERATOR_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log level on stderr (default: $INCIDENT_OPERATOR_LOG_LEVEL or info)",
    )
    run.add_argument(
        "--log-format",
        default=os.environ.get("INCIDENT_OPERATOR_LOG_FORMAT", "text"),
        choices=list(logs.FORMATS),
        help="text or json lines (default: $INCIDENT_OPERATOR_LOG_FORMAT or text)",
    )
    run.set_defaults(func=_run)

    crds = commands.add_parser("crds", help="print the CRDs generated from the models")
    crds.add_argument("--write", metavar="DIR", help="write one file per CRD into DIR")
    crds.set_defaults(func=_crds)

    report = commands.add_parser("report", help="post-incident report as Markdown")
    report.add_argument("name")
    report.add_argument("-n", "--namespace", default="default")
    report.add_argument("--kubeconfig")
    report.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
