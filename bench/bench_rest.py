"""Cost at rest: what open Incidents cost when nothing happens to them, and how late the
clock fires.

    .venv/bin/python bench/bench_rest.py [--window 60] [--cadence 60] [--cadence-window 300]
        [--incidents 1000] [--skip idle|cadence] [--profile PATH]

Part 1, nothing due (severity 4 of the playbook: response 1h, updates every 24h): the
operator (as installed, leader election on) with 100 open Incidents, then with 1,000, each
for ``--window`` seconds once everything settled: API requests per second (the API
server's own count, Lease renewals apart), CPU (% of one core) and RSS from /proc. Then a
bare Kopf operator (bench/floor_operator.py) watching the same 1,000 Incidents for the same
window: the floor for memory and CPU.

Part 2, cadence due: a policy with ``updateCadence`` of ``--cadence`` seconds for severity 4,
1,000 Incidents, ``--cadence-window`` seconds measured from the first update due. Every
update is a decision: requests per second against the floor of the writes the updates
need (one status write and one Event each), CPU, RSS, and how late each update fired:
its timeline time minus its due time (the previous message's time plus the cadence), as
a share of the cadence.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness as h
import watching

UPDATE = re.compile(r"^Incident update #(\d+) sent")


def create_all(cluster: h.Cluster, namespace: str, names: list[str], process: h.Process) -> None:
    watcher = watching.Watcher(cluster, namespace)
    h.create_concurrently(cluster, namespace, [h.incident(x, severity=4) for x in names])
    wanted = set(names)
    h.until(lambda: watcher.count_done(wanted) == len(wanted), 900, "triage", process)
    watcher.stop()


def measure(
    cluster: h.Cluster, namespace: str, process: h.Process, seconds: float
) -> dict[str, Any]:
    """Requests, Lease requests, CPU and RSS of ``process`` over ``seconds``."""
    requests, leases = cluster.dispatched(namespace), cluster.dispatched(f"{namespace}-leases")
    cpu, started = process.stats.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {
        "seconds": elapsed,
        "rps": (cluster.dispatched(namespace) - requests) / elapsed,
        "lease_rps": (cluster.dispatched(f"{namespace}-leases") - leases) / elapsed,
        "cpu": 100 * (process.stats.cpu_seconds() - cpu) / elapsed,
        "rss": process.stats.rss_mib(),
        "peak": process.stats.hwm_mib(),
        "load": h.load(),
    }


def nothing_due(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    cluster = h.Cluster()
    workdir = Path(tempfile.mkdtemp(prefix="bench-rest-"))
    rows = []
    with h.bench_namespace(cluster, "rest") as namespace:
        operator = h.start_operator(cluster, namespace, workdir)
        try:
            done = 0
            for total in (100, 1000):
                create_all(
                    cluster, namespace, [f"inc-{i:04d}" for i in range(done, total)], operator
                )
                done = total
                watching.settle(cluster, namespace)
                rows.append(
                    (
                        f"operator, {total} open, nothing due",
                        measure(cluster, namespace, operator, args.window),
                    )
                )
                print(rows[-1][0], rows[-1][1], flush=True)
        finally:
            operator.stop()
        env = {"KUBECONFIG": cluster.operator_kubeconfig()}
        floor = h.spawn(
            [h.PYTHON, str(h.ROOT / "bench" / "floor_operator.py"), "-n", namespace],
            env,
            workdir / "floor.log",
        )
        try:
            time.sleep(10)  # start-up and the initial listing of 1,000 Incidents
            rows.append(
                ("bare Kopf (floor), 1000 open", measure(cluster, namespace, floor, args.window))
            )
            print(rows[-1][0], rows[-1][1], flush=True)
        finally:
            floor.stop()
    return rows


def lateness(items: list[dict[str, Any]], cadence: float, since: float) -> tuple[list[float], int]:
    """Each update's delay past its due time, as a share of the cadence; updates counted."""
    shares = []
    for item in items:
        status = item.get("status") or {}
        previous = (status.get("notifications") or {}).get("initialSentAt")
        last = h.parse_time(previous) if previous else None
        for entry in status.get("timeline") or []:
            if entry.get("reason") != "StatusUpdate" or not UPDATE.match(entry["message"]):
                continue
            at = h.parse_time(entry["time"])
            if last is not None and at >= since:
                shares.append((at - (last + cadence)) / cadence)
            last = at
    return shares, len(shares)


def cadence_due(args: argparse.Namespace) -> tuple[dict[str, Any], list[float], int]:
    cluster = h.Cluster()
    workdir = Path(tempfile.mkdtemp(prefix="bench-cadence-"))
    policy = {"levels": [{"level": 4, "updateCadence": f"{args.cadence:g}s"}]}
    with h.bench_namespace(cluster, "cadence") as namespace:
        operator = h.start_operator(cluster, namespace, workdir, policy)
        try:
            names = [f"inc-{i:04d}" for i in range(args.incidents)]
            created = time.time()
            create_all(cluster, namespace, names, operator)
            # Measure from the first update due on, for the window.
            time.sleep(max(0.0, created + args.cadence - time.time()))
            since = time.time()
            profiler = profile(operator, args)
            result = measure(cluster, namespace, operator, args.cadence_window)
            if profiler is not None:
                profiler.wait(timeout=120)
            shares, updates = lateness(cluster.list(namespace), args.cadence, since)
        finally:
            operator.stop()
    return result, shares, updates


def profile(process: h.Process, args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    """py-spy on the operator for the cadence window (--profile PATH; raw stacks, which
    bench/profile_summary.py sums up). It costs the operator some CPU: profile apart."""
    if not args.profile:
        return None
    command = [str(Path(h.PYTHON).parent / "py-spy"), "record", "--pid", str(process.pid)]
    command += ["--rate", "50", "--format", "raw", "--output", args.profile, "--nonblocking"]
    command += ["--duration", str(int(args.cadence_window))]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--cadence", type=float, default=60)
    parser.add_argument("--cadence-window", type=float, default=300)
    parser.add_argument("--skip", choices=["idle", "cadence"], action="append", default=[])
    parser.add_argument("--profile", help="py-spy the operator's cadence window into PATH")
    args = parser.parse_args()
    h.header("bench_rest.py", sys.argv[1:])
    if "idle" not in args.skip:
        rows = nothing_due(args)
        print("| what | requests/s | Lease requests/s | CPU % of a core | RSS MiB | load |")
        print("|---|---|---|---|---|---|")
        for label, r in rows:
            print(
                f"| {label} | {r['rps']:.2f} | {r['lease_rps']:.2f} | {r['cpu']:.2f} | "
                f"{r['rss']:.0f} | {r['load']} |"
            )
        ops = [r for label, r in rows if label.startswith("operator")]
        if len(ops) == 2:
            low, high = ops[0]["rps"], ops[1]["rps"]
            growth = f"{h.ratio(high, low):.2f}" if low > 0 else ("flat" if high == 0 else "inf")
            print(
                f"requests/s at 1000 open / at 100 open: {high:.2f} / {low:.2f} = {growth} "
                "(linear would be 10)"
            )
    if "cadence" not in args.skip:
        r, shares, updates = cadence_due(args)
        need = 2 * updates / r["seconds"]  # one status write and one Event per update
        late = h.summary(shares)
        print(
            f"\n{args.incidents} open, updates every {args.cadence:g}s, {r['seconds']:.0f}s "
            f"window ({r['load']}): {updates} updates"
        )
        print("| figure | value | floor | ratio | target |")
        print("|---|---|---|---|---|")
        print(
            f"| requests/s | {r['rps']:.1f} | {need:.1f} (2 writes per update) | "
            f"{h.ratio(r['rps'], need):.2f} | - |"
        )
        print(f"| Lease requests/s | {r['lease_rps']:.2f} | - | - | - |")
        cpu_met = "met" if r["cpu"] < 5 else "missed"
        print(f"| CPU % of a core | {r['cpu']:.1f} | - | - | < 5 %: {cpu_met} |")
        print(
            f"| RSS MiB (peak) | {r['rss']:.0f} ({r['peak']:.0f}) | - | - | < 300: "
            f"{'met' if r['peak'] < 300 else 'missed'} |"
        )
        print(
            f"| update lateness p50/p99/max, % of cadence | {100 * late['p50']:.2f} / "
            f"{100 * late['p99']:.2f} / {100 * late['max']:.2f} | 0 | - | p99 < 2 %: "
            f"{'met' if late['p99'] < 0.02 else 'missed'} |"
        )


if __name__ == "__main__":
    main()
